import type { OlmMachine, RoomMessageRequest } from '@matrix-org/matrix-sdk-crypto-wasm';
import { type MatrixHttp, seg } from '../core/http.ts';

/** What in-room verification needs of the account's room encryption (RoomEncryptor). */
export interface EncryptingRooms {
  isEncrypted(roomId: string): Promise<boolean>;
  /** Tracks the room's members and queries their devices. */
  recipients(roomId: string): Promise<unknown>;
  encrypt(roomId: string, eventType: string, content: string): Promise<string>;
}

/**
 * The room side of in-room key verification (Matrix spec "Key verification framework",
 * in-room events), which is how Element verifies other users: finds the encrypted direct
 * chat with a user, and sends the machine's `m.key.verification.*` room messages encrypted
 * when the room is (a plain client's own guard would otherwise see plaintext go into an
 * encrypted room). Runs inside the account's queue.
 */
export class RoomVerificationMessenger {
  constructor(
    private readonly machine: OlmMachine,
    private readonly rooms: EncryptingRooms,
    private readonly http: MatrixHttp,
  ) {}

  /** Tracks the members of the account's encrypted rooms (at most `limit` rooms) and queries their devices. */
  async trackEncryptedRoomMembers(limit = 100): Promise<void> {
    const { joined_rooms: joined = [] } = await this.http.request<{ joined_rooms?: string[] }>('GET', '/joined_rooms');
    for (const roomId of joined.slice(0, limit)) {
      if (await this.rooms.isEncrypted(roomId).catch(() => false)) await this.rooms.recipients(roomId);
    }
  }

  /** An encrypted room whose only members are this account and `userId` (a direct chat). */
  async findDirectRoom(userId: string): Promise<string> {
    const own = this.machine.userId.toString();
    const { joined_rooms: joined = [] } = await this.http.request<{ joined_rooms?: string[] }>('GET', '/joined_rooms');
    for (const roomId of joined) {
      if (!(await this.rooms.isEncrypted(roomId).catch(() => false))) continue;
      const members = await this.http.request<{ joined?: Record<string, unknown> }>(
        'GET',
        `/rooms/${seg(roomId)}/joined_members`,
      );
      const ids = Object.keys(members.joined ?? {}).sort();
      if (ids.length === 2 && ids.includes(own) && ids.includes(userId)) return roomId;
    }
    throw new Error(
      `You have no encrypted direct chat with ${userId}: start one in your Matrix client, then verify again`,
    );
  }

  /** Sends a room event for the verification; returns its event id. */
  async sendEvent(
    roomId: string,
    eventType: string,
    content: string,
    txnId: string = crypto.randomUUID(),
  ): Promise<string> {
    let type = eventType;
    let body = content;
    if (await this.rooms.isEncrypted(roomId)) {
      body = await this.rooms.encrypt(roomId, eventType, content);
      type = 'm.room.encrypted';
    }
    const answer = await this.http.request<{ event_id: string }>(
      'PUT',
      `/rooms/${seg(roomId)}/send/${seg(type)}/${seg(txnId)}`,
      body,
    );
    return answer.event_id;
  }

  /** Sends one of the machine's RoomMessageRequests and reports the answer back to it. */
  async send(request: RoomMessageRequest): Promise<void> {
    const eventId = await this.sendEvent(request.room_id, request.event_type, request.body, request.txn_id);
    await this.machine.markRequestAsSent(request.id, request.type, JSON.stringify({ event_id: eventId }));
  }
}
