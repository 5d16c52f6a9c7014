import type { OlmMachine } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { OutgoingRequestProcessor } from './outgoing-request-processor.ts';

/** Rounds of `outgoingRequests()` per run: answers may queue more, but not forever. */
const MAX_ROUNDS = 10;

/**
 * Sends what the machine has queued (keys upload, query and claim, to-device messages,
 * signatures, key backup) until it has nothing left. One run at a time: a caller that
 * arrives while a run is under way shares it, which covers that caller because the run
 * loops until the machine is empty.
 */
export class OutgoingRequestLoop {
  private running: Promise<void> | undefined;

  constructor(
    private readonly machine: OlmMachine,
    private readonly processor: OutgoingRequestProcessor,
  ) {}

  run(): Promise<void> {
    this.running ??= (async () => {
      try {
        for (let round = 0; round < MAX_ROUNDS; round++) {
          const requests = await this.machine.outgoingRequests();
          if (requests.length === 0) return;
          for (const request of requests) await this.processor.send(request);
        }
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }
}
