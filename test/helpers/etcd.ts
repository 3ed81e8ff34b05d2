// A real single-member etcd (Debian's /usr/bin/etcd) for tests: free ports on
// 127.0.0.1 (or a given address inside a namespace via `ip netns exec`), a
// temp data dir, ready when it says it serves clients; stop() kills it and
// removes the dir, and a failed start cleans up the same way.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

export const ETCD_BIN = '/usr/bin/etcd';

export interface EtcdOptions {
  /** Run inside this network namespace (ip netns exec); then also give listenIp. */
  netns?: string;
  /** Address to listen on (default 127.0.0.1). */
  listenIp?: string;
  /** Give up after this many ms (default 15000). */
  startTimeoutMs?: number;
}

export interface EtcdServer {
  endpoint: string;
  dataDir: string;
  pid: number;
  /** Everything etcd printed (for diagnosing a failed test). */
  log(): string;
  stop(): Promise<void>;
}

export function etcdAvailable(): boolean {
  return fs.existsSync(ETCD_BIN);
}

/** A port the kernel just handed out on 127.0.0.1 (free unless someone races us; start retries). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      lastErr = err;
      if (!/address already in use/.test(String(err))) break;
    }
  }
  throw lastErr;
}

async function startOnce(opts: EtcdOptions): Promise<EtcdServer> {
  const ip = opts.listenIp ?? '127.0.0.1';
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-test-etcd-'));
  const host = ip.includes(':') ? `[${ip}]` : ip;
  const client = `http://${host}:${clientPort}`;
  const peer = `http://${host}:${peerPort}`;
  const args = [
    '--name', 'test', '--data-dir', dataDir,
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`, '--initial-cluster-state', 'new',
    '--heartbeat-interval', '50', '--election-timeout', '500',
  ];
  const [cmd, argv] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, ETCD_BIN, ...args]] : [ETCD_BIN, args];
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let output = '';
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));

  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    running.delete(proc);
    fs.rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd did not get ready in time:\n${output.slice(-2000)}`)), opts.startTimeoutMs ?? 15000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (/ready to serve client requests/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`etcd exited (${code ?? sig}) before it was ready:\n${output.slice(-2000)}`));
      });
      proc.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    if (!opts.netns) await waitHealthy(client);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint: client, dataDir, pid: proc.pid!, log: () => output, stop };
}

/** GET /health until it says true (the log line comes a moment before the leader is elected). */
async function waitHealthy(endpoint: string, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${endpoint}/health`);
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') return;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`etcd at ${endpoint} is not healthy after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
