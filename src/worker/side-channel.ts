// The worker's end of the binary side channel (framing in src/protocol/worker.ts): fd 4, a pipe the host opened
// when it forked this process. Absent (a worker started by hand, an older host), send() is a no-op returning false.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { SIDE_FD_ENV, encodeSideRecord, type SideRecordKind } from '../protocol/worker';

/** Beyond this many unsent bytes (the host is not reading), records are dropped instead of queued. */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;

export class SideChannelWriter {
  private socket: net.Socket | null = null;
  private dropped = 0;

  constructor(
    fd: number | undefined,
    private readonly log: (message: string) => void,
  ) {
    if (fd === undefined || !Number.isInteger(fd) || fd < 3) return;
    try {
      const st = fs.fstatSync(fd);
      if (!st.isSocket() && !st.isFIFO()) return;
      const s = new net.Socket({ fd, readable: false, writable: true });
      s.on('error', (e) => {
        this.log(`binary side channel failed, statistics frames stop: ${e.message}`);
        this.socket = null;
      });
      // Never the reason the process stays alive.
      s.unref();
      this.socket = s;
    } catch (e) {
      this.log(`binary side channel unavailable (fd ${fd}): ${(e as Error).message}`);
    }
  }

  /** From the environment the host sets (BASIN_SIDE_FD). */
  static fromEnv(log: (message: string) => void): SideChannelWriter {
    const v = process.env[SIDE_FD_ENV];
    return new SideChannelWriter(v ? Number(v) : undefined, log);
  }

  get available(): boolean {
    return this.socket !== null;
  }

  /** Queues one record; false when there is no channel or the record was dropped (the host is not keeping up). */
  send(kind: SideRecordKind, jobId: string, runDir: string, step: number, bytes: Uint8Array): boolean {
    const s = this.socket;
    if (!s) return false;
    if (s.writableLength > MAX_QUEUED_BYTES) {
      if (this.dropped++ === 0) this.log(`the host is not reading the side channel: dropping records (${s.writableLength} bytes queued)`);
      return false;
    }
    if (this.dropped) {
      this.log(`side channel drained; ${this.dropped} record(s) were dropped`);
      this.dropped = 0;
    }
    s.write(encodeSideRecord({ kind, jobId, runDir, step, bytes }));
    return true;
  }
}
