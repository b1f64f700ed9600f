// Test support: a throw-away single-node Ceph cluster (1 mon, 1 memstore OSD,
// radosgw with the beast frontend) on 127.0.0.1, for S3 tests.
//
// Everything lives in a private directory (conf, mon data, osd data, run dir,
// admin sockets, logs, crash dir) with a unique fsid and unique ports, so runs
// never collide with each other or with a system ceph. Needs root (or at least
// permission to run the ceph daemons) and Debian's ceph-mon, ceph-osd,
// radosgw, ceph-common packages (Ceph 16.2 "pacific").
//
// Only node built-ins are used.

import { spawn, execFile, type ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

export interface CephCluster {
  /** S3 endpoint, http://127.0.0.1:PORT (use path-style addressing). */
  endpoint: string;
  /** Region to sign with. */
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The private cluster directory (removed by stop()). */
  dir: string;
  /** Last lines of every daemon log (for diagnosing a failing test). */
  logTail(lines?: number): string;
  /** Kills every daemon (SIGTERM, then SIGKILL) and removes dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartCephOptions {
  /**
   * Cluster directory to use. Created if missing; must be empty if it exists.
   * Removed by stop(). Default: a fresh mkdtemp under os.tmpdir().
   */
  dir?: string;
  /** Overall start-up budget in ms (default 90 000). */
  timeoutMs?: number;
}

const BINARIES = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "osdmaptool", "ceph"] as const;
type Binary = (typeof BINARIES)[number];

const REGION = "us-east-1";
const RGW_NAME = "client.rgw.a";
const MON_ID = "a";
/** Set CONTENTD_CEPH_KEEP=1 to keep the cluster dir (and its logs) after stop() or a failed start. */
const KEEP_ENV = "CONTENTD_CEPH_KEEP";
/** Set CONTENTD_CEPH_TRACE=1 to print the duration of each start-up step on stderr. */
const TRACE_ENV = "CONTENTD_CEPH_TRACE";
const STOP_GRACE_MS = 500;

function findBinary(name: string): string | undefined {
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter((d) => d !== "");
  for (const d of ["/usr/bin", "/usr/sbin", "/usr/local/bin"]) if (!dirs.includes(d)) dirs.push(d);
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** True when every Ceph binary startCeph() needs is installed. */
export function cephAvailable(): boolean {
  return BINARIES.every((b) => findBinary(b) !== undefined);
}

function bin(name: Binary): string {
  const p = findBinary(name);
  if (p === undefined) throw new Error(`startCeph: ${name} not found in PATH (install ceph-mon, ceph-osd, radosgw, ceph-common)`);
  return p;
}

async function freePorts(n: number): Promise<number[]> {
  // Hold all listeners open together so the n ports are distinct.
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      srv.unref();
      servers.push(srv);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          srv.on("error", reject);
          srv.listen(0, "127.0.0.1", () => {
            const a = srv.address();
            resolve(typeof a === "object" && a !== null ? a.port : 0);
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves true if p settles within ms, false otherwise (without leaving a timer behind). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function tailFile(file: string, lines: number, maxBytes = 64 * 1024): string {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, "r");
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const all = buf.toString("utf8").split("\n");
    if (all.length > 0 && all[all.length - 1] === "") all.pop();
    return all.slice(-lines).join("\n");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function logTails(dir: string, lines: number): string {
  const logDir = path.join(dir, "log");
  let files: string[];
  try {
    files = fs.readdirSync(logDir).sort();
  } catch {
    return "(no logs)";
  }
  const out: string[] = [];
  for (const f of files) {
    if (f.includes("audit")) continue;
    const t = tailFile(path.join(logDir, f), lines);
    if (t.trim() === "") continue;
    out.push(`--- ${f} (last ${lines} lines) ---\n${t}`);
  }
  return out.length > 0 ? out.join("\n") : "(logs empty)";
}

interface RunResult {
  stdout: string;
  stderr: string;
}

function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  timeoutMs: number,
  track?: (child: ChildProcess) => void,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env, cwd, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: unknown; signal?: unknown };
          const how = e.killed ? `timed out after ${timeoutMs} ms` : `failed (code ${String(e.code)}, signal ${String(e.signal)})`;
          reject(
            new Error(
              `${path.basename(file)} ${args.join(" ")} ${how}` +
                (stdout.trim() ? `\nstdout: ${stdout.trim()}` : "") +
                (stderr.trim() ? `\nstderr: ${stderr.trim()}` : ""),
            ),
          );
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
    track?.(child);
  });
}

interface Daemon {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  exitInfo?: string;
}

function sha256Hex(data: string): string {
  return crypto.createHash("sha256").update(data, "utf8").digest("hex");
}

function hmac(key: crypto.BinaryLike, data: string): Buffer {
  return crypto.createHmac("sha256", key).update(data, "utf8").digest();
}

/** A minimal S3 GET / (ListBuckets), SigV4-signed when credentials are given. */
function s3ListBuckets(
  endpoint: string,
  creds?: { region: string; accessKeyId: string; secretAccessKey: string },
): Promise<{ status: number; body: string }> {
  const url = new URL(endpoint);
  const headers: Record<string, string> = {};
  if (creds) {
    const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
    const day = amzDate.slice(0, 8);
    const payloadHash = sha256Hex("");
    const signedHeaders = "host;x-amz-content-sha256;x-amz-date";
    const canonical = [
      "GET",
      "/",
      "",
      `host:${url.host}\nx-amz-content-sha256:${payloadHash}\nx-amz-date:${amzDate}\n`,
      signedHeaders,
      payloadHash,
    ].join("\n");
    const scope = `${day}/${creds.region}/s3/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(canonical)].join("\n");
    let k = hmac(`AWS4${creds.secretAccessKey}`, day);
    k = hmac(k, creds.region);
    k = hmac(k, "s3");
    k = hmac(k, "aws4_request");
    const sig = crypto.createHmac("sha256", k).update(toSign, "utf8").digest("hex");
    headers["x-amz-date"] = amzDate;
    headers["x-amz-content-sha256"] = payloadHash;
    headers["authorization"] = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${sig}`;
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: "/", method: "GET", headers, agent: false, timeout: 2000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end();
  });
}

// ---- clean-up of clusters left running when the process exits ---------------

const live = new Set<{ dir: string; pids: () => number[]; keep: boolean }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const c of live) {
      for (const pid of c.pids()) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      if (!c.keep) {
        try {
          fs.rmSync(c.dir, { recursive: true, force: true });
        } catch {
          // best effort
        }
      }
    }
  });
}

// A detached shell that outlives us if we are SIGKILLed: once our pid is gone
// it SIGKILLs the daemons listed in DIR/pids (only if their command line still
// names this cluster's conf) and removes DIR. stop() kills it first.
const WATCHDOG = `
ppid="$1"; dir="$2"; keep="$3"
while kill -0 "$ppid" 2>/dev/null; do sleep 1; done
if [ -f "$dir/pids" ]; then
  for p in $(cat "$dir/pids"); do
    if grep -qaF -- "$dir/ceph.conf" "/proc/$p/cmdline" 2>/dev/null; then kill -9 "$p" 2>/dev/null; fi
  done
fi
[ "$keep" = 1 ] || rm -rf -- "$dir"
`;

// ---- the cluster ---------------------------------------------------------------

function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  const d = dir;
  return `# generated by test/support/ceph.ts
[global]
fsid = ${fsid}
mon_host = v2:127.0.0.1:${monPort}
mon_initial_members = ${MON_ID}
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
auth_allow_insecure_global_id_reclaim = true
mon_warn_on_insecure_global_id_reclaim = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
# msgr2 only; "secure" mode is impossible without cephx (radosgw defaults to it)
ms_bind_msgr1 = false
ms_bind_msgr2 = true
ms_mon_client_mode = crc
keyring = ${d}/keyring
run_dir = ${d}/run
admin_socket = ${d}/run/$cluster-$name.asok
pid_file = ${d}/run/$cluster-$name.pid
log_file = ${d}/log/$cluster-$name.log
mon_cluster_log_file = default=${d}/log/$cluster.$channel.log
crash_dir = ${d}/crash
log_to_stderr = false
err_to_stderr = true
mon_data_avail_crit = 0
mon_data_avail_warn = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
paxos_propose_interval = 0.01
mon_tick_interval = 1

[mon]
mon_data = ${d}/mon
# rocksdb statistics dumps (level 4) drown the mon log
debug_rocksdb = 1/5

[osd]
osd_data = ${d}/osd
osd_journal = ${d}/osd/journal
osd_objectstore = memstore
memstore_device_bytes = ${4 * 1024 * 1024 * 1024}
osd_crush_update_on_start = false
osd_class_update_on_start = false
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1

[${RGW_NAME}]
rgw_frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw_data = ${d}/rgw
rgw_gc_obj_min_wait = 0
rgw_gc_processor_period = 2
rgw_enable_usage_log = false
rgw_thread_pool_size = 64
`;
}

class StartError extends Error {
  constructor(
    message: string,
    readonly portClash: boolean,
  ) {
    super(message);
  }
}

async function attempt(dir: string, deadline: number, keep: boolean): Promise<CephCluster> {
  fs.mkdirSync(dir, { recursive: true });
  for (const sub of ["run", "log", "mon", "osd", "rgw", "crash"]) fs.mkdirSync(path.join(dir, sub), { recursive: true });

  const fsid = crypto.randomUUID();
  const osdUuid = crypto.randomUUID();
  const [monPort, rgwPort] = await freePorts(2);
  const conf = path.join(dir, "ceph.conf");
  fs.writeFileSync(conf, cephConf(dir, fsid, monPort!, rgwPort!));

  const env: NodeJS.ProcessEnv = { ...process.env, CEPH_CONF: conf };
  delete env.CEPH_ARGS;
  delete env.CEPH_KEYRING;

  const daemons: Daemon[] = [];
  const helpers = new Set<ChildProcess>(); // short-lived commands still running
  let watchdog: ChildProcess | undefined;
  let stopped = false;
  const pidsFile = path.join(dir, "pids"); // read by the watchdog
  fs.writeFileSync(pidsFile, "");
  const entry = {
    dir,
    keep,
    pids: () => [
      ...daemons.filter((d) => d.exitInfo === undefined && d.child.pid !== undefined).map((d) => d.child.pid!),
      ...[...helpers].filter((c) => c.pid !== undefined).map((c) => c.pid!),
    ],
  };
  live.add(entry);
  installExitHook();

  const trace = process.env[TRACE_ENV] === "1";
  const remaining = () => Math.max(1, deadline - Date.now());

  // Rejects as soon as any daemon exits during start-up.
  let onDaemonExit: (d: Daemon) => void = () => {};
  const daemonDied = new Promise<never>((_, reject) => {
    onDaemonExit = (d) => reject(new Error(`${d.name} exited during start-up (${d.exitInfo})`));
  });
  daemonDied.catch(() => {});

  const startDaemon = (name: string, file: string, args: string[]): Daemon => {
    const errFile = path.join(dir, "log", `${name}.stderr`);
    const fd = fs.openSync(errFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(file, args, { env, cwd: dir, stdio: ["ignore", fd, fd] });
    } finally {
      fs.closeSync(fd);
    }
    child.unref();
    let resolveExit: () => void = () => {};
    const d: Daemon = { name, child, exited: new Promise<void>((r) => (resolveExit = r)) };
    const onExit = (code: number | null, sig: NodeJS.Signals | null) => {
      if (d.exitInfo !== undefined) return;
      d.exitInfo = sig !== null ? `signal ${sig}` : `code ${code}`;
      resolveExit();
      if (!stopped) onDaemonExit(d);
    };
    child.on("exit", onExit);
    child.on("error", (err) => {
      if (d.exitInfo !== undefined) return;
      d.exitInfo = `spawn error: ${err.message}`;
      resolveExit();
      if (!stopped) onDaemonExit(d);
    });
    if (child.pid !== undefined) fs.appendFileSync(pidsFile, `${child.pid}\n`);
    daemons.push(d);
    return d;
  };

  const trackHelper = (child: ChildProcess) => {
    if (child.pid === undefined) return;
    helpers.add(child);
    child.on("exit", () => helpers.delete(child));
    fs.appendFileSync(pidsFile, `${child.pid}\n`);
  };
  const exec = (file: string, args: string[]) => run(file, args, env, dir, remaining(), trackHelper);

  const stop = async (removeDir: boolean): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (watchdog?.pid !== undefined) {
      try {
        process.kill(watchdog.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    for (const c of helpers) c.kill("SIGKILL");
    // One at a time, clients first: radosgw (waits for its in-flight RADOS ops),
    // the OSD (tells the mon it is going down and waits for the answer), the mon. The memstore OSD would dump its whole store
    // to disk on a clean shutdown, which is wasted work here: short grace only.
    for (const phase of ["rgw", "osd", "mon"].map((n) => daemons.filter((d) => d.name === n))) {
      const alive = phase.filter((d) => d.exitInfo === undefined);
      for (const d of alive) d.child.kill("SIGTERM");
      const all = Promise.all(alive.map((d) => d.exited));
      const t0 = Date.now();
      if (!(await within(all, STOP_GRACE_MS))) {
        const stuck = alive.filter((d) => d.exitInfo === undefined);
        for (const d of stuck) d.child.kill("SIGKILL");
        if (trace) process.stderr.write(`startCeph: stop: SIGKILL ${stuck.map((d) => d.name).join(", ")}\n`);
        await within(all, 5000);
      }
      if (trace) process.stderr.write(`startCeph: stop ${alive.map((d) => d.name).join(", ")}: ${Date.now() - t0} ms\n`);
    }
    live.delete(entry);
    if (removeDir && !keep) fs.rmSync(dir, { recursive: true, force: true });
  };

  const step = async <T>(what: string, p: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out`)), remaining());
    });
    const t0 = Date.now();
    try {
      const v = await Promise.race([p, daemonDied, timeout]);
      if (trace) process.stderr.write(`startCeph: ${what}: ${Date.now() - t0} ms\n`);
      return v;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`${what}: ${msg}`);
    } finally {
      clearTimeout(timer);
    }
  };

  const ceph = (args: string[]) => exec(bin("ceph"), ["-c", conf, "--connect-timeout", String(Math.ceil(remaining() / 1000)), ...args]);

  try {
    watchdog = spawn("sh", ["-c", WATCHDOG, "ceph-test-watchdog", String(process.pid), dir, keep ? "1" : "0"], {
      detached: true,
      stdio: "ignore",
    });
    watchdog.on("error", () => {});
    watchdog.unref();

    const monmap = path.join(dir, "monmap");
    // The initial osdmap's crush map already holds osd.0 (host "localhost" under
    // root "default"), so no `ceph osd crush add` round trip is needed later.
    const osdmap = path.join(dir, "osdmap");
    await step(
      "monmaptool, osdmaptool",
      Promise.all([
        exec(bin("monmaptool"), ["--create", "--clobber", "--fsid", fsid, "--addv", MON_ID, `[v2:127.0.0.1:${monPort}]`, monmap]),
        exec(bin("osdmaptool"), [osdmap, "--createsimple", "1", "--clobber"]),
      ]),
    );
    await step(
      "mkfs",
      Promise.all([
        exec(bin("ceph-mon"), ["-c", conf, "--mkfs", "-i", MON_ID, "--monmap", monmap, "--osdmap", osdmap]),
        // --no-mon-config: otherwise mkfs blocks fetching config from a mon that is not running yet.
        exec(bin("ceph-osd"), ["-c", conf, "--mkfs", "--no-mon-config", "-i", "0", "--osd-uuid", osdUuid]),
      ]),
    );

    startDaemon("mon", bin("ceph-mon"), ["-c", conf, "-f", "-i", MON_ID]);
    // `ceph` waits for the mon to come up.
    const created = await step("ceph osd create", ceph(["osd", "create", osdUuid]));
    if (created.stdout.trim() !== "0") throw new Error(`ceph osd create: expected id 0, got ${JSON.stringify(created.stdout.trim())}`);

    startDaemon("osd", bin("ceph-osd"), ["-c", conf, "-f", "-i", "0"]);
    // radosgw waits for the OSD by itself (its pool writes block until it is up).
    // Do not start it before `osd create`: pools created while the osdmap has no
    // OSD keep their PGs "creating" until a later mon tick (a ~5 s stall).
    startDaemon("rgw", bin("radosgw"), ["-c", conf, "-f", "-n", RGW_NAME]);

    const endpoint = `http://127.0.0.1:${rgwPort}`;
    await step(
      "waiting for radosgw to answer S3",
      (async () => {
        let last = "";
        while (!stopped && Date.now() < deadline) {
          try {
            const r = await s3ListBuckets(endpoint);
            if (r.body.includes("<?xml")) return;
            last = `HTTP ${r.status}: ${r.body.slice(0, 300)}`;
          } catch (err) {
            last = String(err); // not listening yet
          }
          await sleep(50);
        }
        throw new Error(`last answer: ${last}`);
      })(),
    );

    const accessKeyId = "CT" + crypto.randomBytes(9).toString("hex").toUpperCase();
    const secretAccessKey = crypto.randomBytes(30).toString("base64").replace(/[^A-Za-z0-9]/g, "x");
    await step(
      "radosgw-admin user create",
      exec(bin("radosgw-admin"), [
        "-c",
        conf,
        "user",
        "create",
        "--uid",
        "test",
        "--display-name",
        "test",
        "--access-key",
        accessKeyId,
        "--secret",
        secretAccessKey,
      ]),
    );
    const creds = { region: REGION, accessKeyId, secretAccessKey };
    await step(
      "authenticated ListBuckets",
      (async () => {
        let last = "";
        while (!stopped && Date.now() < deadline) {
          try {
            const r = await s3ListBuckets(endpoint, creds);
            if (r.status === 200 && r.body.includes("ListAllMyBucketsResult")) return;
            last = `HTTP ${r.status}: ${r.body.slice(0, 300)}`;
          } catch (err) {
            last = String(err);
          }
          await sleep(50);
        }
        throw new Error(`last answer: ${last}`);
      })(),
    );

    return {
      endpoint,
      region: REGION,
      accessKeyId,
      secretAccessKey,
      dir,
      logTail: (lines = 40) => logTails(dir, lines),
      stop: () => stop(true),
    };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const tails = logTails(dir, 30);
    await stop(false);
    const portClash = /address already in use/i.test(tails) || /address already in use/i.test(msg);
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
    throw new StartError(`startCeph: ${msg}\n(cluster dir ${dir}${keep ? ", kept" : ", removed"})\n${tails}`, portClash);
  }
}

/**
 * Starts a private single-node Ceph cluster with radosgw on 127.0.0.1 and an
 * S3 user. Resolves once an authenticated S3 ListBuckets succeeds. Throws
 * (with the tail of the daemon logs) on failure, after cleaning up.
 */
export async function startCeph(opts: StartCephOptions = {}): Promise<CephCluster> {
  if (!cephAvailable()) {
    throw new Error(`startCeph: missing ceph binaries (${BINARIES.filter((b) => !findBinary(b)).join(", ")})`);
  }
  const keep = process.env[KEEP_ENV] === "1";
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  let dir: string;
  if (opts.dir !== undefined) {
    dir = path.resolve(opts.dir);
    if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) throw new Error(`startCeph: ${dir} exists and is not empty`);
  } else {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ceph-test-"));
  }
  if (/\s/.test(dir)) throw new Error(`startCeph: cluster dir must not contain whitespace: ${dir}`);
  // Admin sockets are unix sockets: keep paths under the 107-byte limit or they are silently skipped.

  for (let i = 1; ; i++) {
    try {
      return await attempt(dir, deadline, keep);
    } catch (err) {
      if (err instanceof StartError && err.portClash && i < 3 && Date.now() < deadline && !keep) continue;
      throw err;
    }
  }
}
