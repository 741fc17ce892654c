/**
 * A real one-node Slurm cluster on this machine for the tests: munged, slurmctld and slurmd from Debian's packages,
 * every file (keys, sockets, state, spool, logs, slurm.conf, gres.conf) in one temporary folder, ports picked free,
 * several CPUs declared so that several array tasks run at once, and optionally GPUs: Slurm's gres/gpu plugin
 * only needs character devices, so two made with mknod (NVIDIA's major number; nothing ever opens them) let it
 * schedule and bind GPUs as on a GPU node (CUDA_VISIBLE_DEVICES per task). `stop()` shuts the daemons down and
 * removes the folder. The clients (sbatch, squeue, scontrol, scancel) find this cluster through SLURM_CONF in `env`.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** Debian packages the cluster needs (slurm-wlm's three parts, without the recommended extras). */
export const SLURM_PACKAGES = ['slurmctld', 'slurmd', 'slurm-client', 'munge'];
const BINARIES = ['/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/bin/sbatch', '/usr/sbin/munged', '/usr/sbin/mungekey'];

export function slurmInstalled(): boolean {
  return BINARIES.every((b) => existsSync(b));
}

/**
 * Install the packages with apt-get when they are missing (CI installs them up front; see the README). Returns the
 * seconds it took, 0 when nothing was needed.
 */
export async function ensureSlurm(): Promise<number> {
  if (slurmInstalled()) return 0;
  const t0 = performance.now();
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => exec('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...SLURM_PACKAGES], { env, timeout: 600_000 });
  try {
    await install();
  } catch {
    // Package lists may be missing on a fresh machine.
    await exec('apt-get', ['update', '-qq'], { env, timeout: 600_000 });
    await install();
  }
  if (!slurmInstalled()) throw new Error(`apt-get installed ${SLURM_PACKAGES.join(' ')} but ${BINARIES.find((b) => !existsSync(b))} is missing`);
  return (performance.now() - t0) / 1000;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface JobInfo {
  id: string;
  state: string;
  exitCode: string;
  reason: string;
}

export class LocalSlurm {
  private readonly children: ChildProcess[] = [];
  private constructor(
    readonly dir: string,
    readonly env: NodeJS.ProcessEnv,
    readonly node: string,
  ) {}

  static async start(opts: { cpus: number; gpus?: number }): Promise<LocalSlurm> {
    const dir = mkdtempSync(join(tmpdir(), 'mimic-slurm-'));
    // munged insists that every folder above its socket is searchable by all, and that the key is private.
    chmodSync(dir, 0o711);
    for (const d of ['state', 'spool']) mkdirSync(join(dir, d));
    const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
    const node = 'mimicnode';
    const host = hostname();
    const gpus = opts.gpus ?? 0;
    if (gpus > 0) {
      for (let i = 0; i < gpus; i++) execFileSync('mknod', [join(dir, `nvidia${i}`), 'c', '195', String(i)]);
      writeFileSync(join(dir, 'gres.conf'), `NodeName=${node} Name=gpu File=${join(dir, 'nvidia')}[0-${gpus - 1}]\n`);
    }
    const conf = [
      'ClusterName=mimictest',
      `SlurmctldHost=${host}(127.0.0.1)`,
      `SlurmctldPort=${ctldPort}`,
      `SlurmdPort=${slurmdPort}`,
      'AuthType=auth/munge',
      `AuthInfo=socket=${join(dir, 'munge.sock')}`,
      'CredType=cred/munge',
      'SlurmUser=root',
      'SlurmdUser=root',
      `StateSaveLocation=${join(dir, 'state')}`,
      `SlurmdSpoolDir=${join(dir, 'spool')}`,
      `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
      `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
      `SlurmctldLogFile=${join(dir, 'slurmctld.log')}`,
      `SlurmdLogFile=${join(dir, 'slurmd.log')}`,
      // No cgroups in a container: track processes by parentage, no task binding, no accounting database.
      'ProctrackType=proctrack/linuxproc',
      'TaskPlugin=task/none',
      'JobAcctGatherType=jobacct_gather/none',
      'AccountingStorageType=accounting_storage/none',
      'JobCompType=jobcomp/none',
      'SchedulerType=sched/builtin',
      // One CPU is one task slot, so an array of single-CPU tasks runs side by side.
      'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_CPU',
      // The node may declare more CPUs than the machine has (the tests' tasks are light).
      'SlurmdParameters=config_overrides',
      'MpiDefault=none',
      'ReturnToService=2',
      'KillWait=2',
      // Finished jobs stay visible to scontrol for the test's checks.
      'MinJobAge=3600',
      ...(gpus > 0 ? ['GresTypes=gpu'] : []),
      `NodeName=${node} NodeHostname=${host} NodeAddr=127.0.0.1 CPUs=${opts.cpus} RealMemory=4000${gpus > 0 ? ` Gres=gpu:${gpus}` : ''} State=UNKNOWN`,
      `PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP`,
      '',
    ].join('\n');
    const confPath = join(dir, 'slurm.conf');
    writeFileSync(confPath, conf);
    const env = { ...process.env, SLURM_CONF: confPath };
    const cluster = new LocalSlurm(dir, env, node);
    try {
      execFileSync('/usr/sbin/mungekey', ['--create', '--keyfile', join(dir, 'munge.key')]);
      cluster.daemon('/usr/sbin/munged', [
        '--foreground',
        `--socket=${join(dir, 'munge.sock')}`,
        `--key-file=${join(dir, 'munge.key')}`,
        `--pid-file=${join(dir, 'munged.pid')}`,
        `--log-file=${join(dir, 'munged.log')}`,
        `--seed-file=${join(dir, 'munge.seed')}`,
      ]);
      await waitFor(() => existsSync(join(dir, 'munge.sock')), 10_000, 'munged to create its socket', () => cluster.logs());
      cluster.daemon('/usr/sbin/slurmctld', ['-D', '-i']);
      await waitFor(async () => (await cluster.tryRun('scontrol', ['ping'])).includes('UP'), 30_000, 'slurmctld to answer', () => cluster.logs());
      cluster.daemon('/usr/sbin/slurmd', ['-D', '-N', node]);
      await waitFor(
        async () => /^idle/.test((await cluster.tryRun('sinfo', ['-h', '-n', node, '-o', '%t'])).trim()),
        30_000,
        'the node to be idle',
        () => cluster.logs(),
      );
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  private daemon(cmd: string, args: string[]): void {
    const child = spawn(cmd, args, { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('exit', (code, signal) => {
      if (code !== 0 && code !== null) writeFileSync(join(this.dir, `${cmd.split('/').pop()}.exit`), `${code} ${signal}\n${stderr}`);
    });
    this.children.push(child);
  }

  /** Run a Slurm client command against this cluster; throws with its stderr when it fails. */
  async run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
    try {
      const { stdout } = await exec(cmd, args, { env: { ...this.env, ...opts.env }, cwd: opts.cwd, timeout: 60_000 });
      return stdout;
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr || err.message}${err.stdout ? `\nstdout: ${err.stdout}` : ''}`);
    }
  }

  private async tryRun(cmd: string, args: string[]): Promise<string> {
    try {
      return await this.run(cmd, args);
    } catch {
      return '';
    }
  }

  /** State of a job or array task ("12", "12_3"), from scontrol. */
  async job(id: string): Promise<JobInfo> {
    const text = await this.run('scontrol', ['show', 'job', '-o', id]);
    const line = text.split('\n').find((l) => l.includes(`JobId=`)) ?? '';
    const field = (name: string) => new RegExp(`\\b${name}=(\\S*)`).exec(line)?.[1] ?? '';
    return { id, state: field('JobState'), exitCode: field('ExitCode'), reason: field('Reason') };
  }

  /** Every task of a job array (or the one job), with its state. */
  async arrayTasks(jobId: string): Promise<Map<number, JobInfo>> {
    const text = await this.run('scontrol', ['show', 'job', '-o', jobId]);
    const tasks = new Map<number, JobInfo>();
    for (const line of text.split('\n')) {
      const task = /\bArrayTaskId=(\d+)(?=\s|$)/.exec(line)?.[1];
      if (task === undefined) continue;
      const field = (name: string) => new RegExp(`\\b${name}=(\\S*)`).exec(line)?.[1] ?? '';
      tasks.set(Number(task), { id: `${jobId}_${task}`, state: field('JobState'), exitCode: field('ExitCode'), reason: field('Reason') });
    }
    return tasks;
  }

  /** Jobs still pending or running. */
  async queue(): Promise<string[]> {
    return (await this.run('squeue', ['-h', '-o', '%i %T'])).split('\n').filter(Boolean);
  }

  /** Wait until the queue is empty (every job ended one way or another). */
  async waitIdle(timeoutMs: number): Promise<void> {
    await waitFor(async () => (await this.queue()).length === 0, timeoutMs, 'the queue to drain', async () =>
      `${(await this.queue()).join('\n')}\n${this.logs()}`);
  }

  /** The daemons' logs (for failure messages). */
  logs(): string {
    return ['slurmctld.log', 'slurmd.log', 'munged.log', 'slurmctld.exit', 'slurmd.exit', 'munged.exit']
      .map((f) => join(this.dir, f))
      .filter((f) => existsSync(f))
      .map((f) => `--- ${f} (tail)\n${readFileSync(f, 'utf8').split('\n').slice(-25).join('\n')}`)
      .join('\n');
  }

  async stop(): Promise<void> {
    await this.tryRun('scancel', ['--full', '--quiet', '-u', 'root']);
    await this.tryRun('scontrol', ['shutdown']);
    const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;
    // Daemons last to first: slurmd, slurmctld, then munged (which they authenticate through).
    for (const child of [...this.children].reverse()) {
      if (!exited(child)) {
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))]);
        if (!exited(child)) child.kill('SIGKILL');
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  details?: () => string | Promise<string>,
  intervalMs = 100,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${details ? `\n${await details()}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
