/**
 * The page hook's end of its private MessagePort to the bridge: takes the bridge's port
 * offer (the first one only: the page can forge window messages too), learns the frame's
 * HookConfig, and matches the worker's replies to the requests by id.
 */
import {
  type BridgePortMessage,
  type HookConfig,
  type HookPortMessage,
  type PageReply,
  type PageRequest,
  isBridgePortOffer,
} from '../shared/page.ts';

/** If no bridge ever answers (extension reloading, page not allowed), the hook stops waiting then. */
export const CONFIG_WAIT_MS = 3000;

/** What the hook answers while there is no bridge. */
const NOT_READY: PageReply = { ok: false, status: 503, errcode: 'M_UNKNOWN', error: 'Kirjava is not ready' };

/** The window messages the hook listens to (the page's `window`; a stand-in in tests). */
export interface OfferSource {
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
}

/**
 * The hook's end of the port to the bridge: adopts the bridge's first port offer, holds the
 * frame's HookConfig, and sends page requests to the worker, each answered by its reply.
 */
export class HookPort {
  private port: MessagePort | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (reply: PageReply) => void>();
  private configured!: () => void;
  /** Settles once the bridge sent the configuration (or after CONFIG_WAIT_MS without one). */
  readonly ready = new Promise<void>((resolve) => (this.configured = resolve));
  /** Whether the user allowed this page's site. */
  allowed = false;
  /** Homeservers whose traffic this page may hand to the worker. */
  homeservers: string[] = [];

  constructor(offers: OfferSource, configWaitMs = CONFIG_WAIT_MS) {
    setTimeout(() => this.configured(), configWaitMs);
    offers.addEventListener('message', (event: MessageEvent) => {
      if (event.source !== offers || this.port || !isBridgePortOffer(event.data) || !event.ports[0]) return;
      event.stopImmediatePropagation();
      this.port = event.ports[0];
      this.port.onmessage = (message: MessageEvent) => this.received(message.data as BridgePortMessage);
    });
  }

  private received(data: BridgePortMessage): void {
    if (data?.type === 'config' && data.config) {
      this.configure(data.config);
    } else if (data?.type === 'reply' && typeof data.id === 'number' && data.reply) {
      this.pending.get(data.id)?.(data.reply);
      this.pending.delete(data.id);
    }
  }

  private configure(config: HookConfig): void {
    this.allowed = config.allowed === true;
    this.homeservers = config.homeservers;
    this.configured();
  }

  /** The configured homeserver `url` belongs to, if any. */
  homeserverOf(url: string): string | undefined {
    return this.homeservers.find((base) => url === base || url.startsWith(`${base}/`));
  }

  /** Asks the worker through the bridge; its reply (never a rejection). */
  ask(request: PageRequest): Promise<PageReply> {
    const port = this.port;
    if (!port) return Promise.resolve(NOT_READY);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      port.postMessage({ id, request } satisfies HookPortMessage);
    });
  }

  /** Tells the bridge to start a stopped worker (see PageRequest 'warm'); no reply. */
  warm(request: PageRequest & { kind: 'warm' }): void {
    this.port?.postMessage({ warm: request } satisfies HookPortMessage);
  }
}
