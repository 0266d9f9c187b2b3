import { storedMessageId } from '../../common/protocol/server-frames.js';

const OPCODE_TEXT_FIN = 0x81;

/**
 * Push frames as whole WebSocket frames (header and payload in one Buffer), for a fan-out: the
 * same stored body goes to thousands of devices one after another, so the part every device
 * shares (the body after its `{`, UTF-8 encoded) and the message id are made once per body and
 * only `{"t":"push","seq":N,` and the frame header are written per device. The bytes are
 * exactly those of `ws.send(encodePushFrame(seq, body))` from a server (unmasked text frame,
 * FIN, no compression: the hub turns perMessageDeflate off).
 */
export class PushFrameEncoder {
  private body: string | undefined = undefined;
  private tail: Buffer = Buffer.alloc(0);
  private messageId = '';

  private use(body: string): void {
    if (body === this.body) return;
    // Validates the body as encodePushFrame's callers expect (the text must start with `{`).
    this.tail = Buffer.from(body.slice(1), 'utf8');
    this.messageId = storedMessageId(body);
    this.body = body;
  }

  /** The message id of `body` (storedMessageId, cached with the frame's shared part). */
  id(body: string): string {
    this.use(body);
    return this.messageId;
  }

  /** The complete WebSocket frame of the push `encodePushFrame(seq, body)`. */
  frame(seq: number, body: string): Buffer {
    this.use(body);
    const head = `{"t":"push","seq":${Math.trunc(seq)},`; // ASCII only: one byte per char
    const payload = head.length + this.tail.length;
    const headerLen = payload < 126 ? 2 : payload < 65536 ? 4 : 10;
    const out = Buffer.allocUnsafe(headerLen + payload);
    out[0] = OPCODE_TEXT_FIN;
    if (headerLen === 2) out[1] = payload;
    else if (headerLen === 4) {
      out[1] = 126;
      out.writeUInt16BE(payload, 2);
    } else {
      out[1] = 127;
      out.writeUInt32BE(0, 2);
      out.writeUInt32BE(payload, 6);
    }
    out.write(head, headerLen, 'latin1');
    this.tail.copy(out, headerLen + head.length);
    return out;
  }
}
