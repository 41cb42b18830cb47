/**
 * Summarises a V8 .cpuprofile (from BENCH_CPU_PROF=dir npm run bench): self time per function and per package /
 * source file, and total (inclusive) time of the project's own functions, so "where time goes" is measured.
 *   npx tsx bench/profile-summary.ts file.cpuprofile [top=25] [callersOf=functionName] [--busiest=ms]
 * `--busiest=4000`: only the samples of the busiest 4 s of the run (a closed loop, say), not start-up and idle waits.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function where(url: string): string {
  if (url === '') return '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const own = /\/work\/[^/]+\/[^/]+\/((?:src|bench|test)\/.*)$/.exec(url) ?? /((?:src|bench|test)\/[^?]*)$/.exec(url);
  if (own) return own[1]!;
  return url.replace(/^node:/, 'node:');
}

function main(): void {
  const args = process.argv.slice(2);
  const busiest = Number(args.find((a) => a.startsWith('--busiest='))?.slice('--busiest='.length) ?? 0);
  const [file, topArg, callersOf] = args.filter((a) => !a.startsWith('--'));
  if (!file) throw new Error('usage: profile-summary <file.cpuprofile> [top] [callersOf] [--busiest=ms]');
  const top = Number(topArg ?? 25);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  if (busiest > 0) keepBusiestWindow(profile, busiest * 1000, (id) => byId.get(id)!.callFrame.functionName === '(idle)');
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;

  const selfByFn = new Map<string, number>();
  const selfByWhere = new Map<string, number>();
  const inclusiveOwn = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const label = `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    selfByFn.set(label, (selfByFn.get(label) ?? 0) + us);
    const w = where(n.callFrame.url);
    selfByWhere.set(w, (selfByWhere.get(w) ?? 0) + us);
    // Inclusive time of our own functions: walk up the stack once per distinct frame.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!/\/(src|bench)\//.test(f.url) || /node_modules/.test(f.url)) continue;
      const key = `${f.functionName || '(anonymous)'} ${where(f.url)}:${f.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusiveOwn.set(key, (inclusiveOwn.get(key) ?? 0) + us);
    }
  }
  const print = (title: string, m: Map<string, number>) => {
    process.stdout.write(`\n${title}\n`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${pct(v)}  ${k}\n`);
  };
  // Who calls a hot native function (e.g. writeBuffer): the nearest JavaScript frames above it, 9 deep.
  const callers = new Map<string, number>();
  if (callersOf) {
    for (const [id, us] of selfUs) {
      if (byId.get(id)!.callFrame.functionName !== callersOf) continue;
      const chain: string[] = [];
      for (let cur = parent.get(id); cur !== undefined && chain.length < 9; cur = parent.get(cur)) {
        const f = byId.get(cur)!.callFrame;
        if (f.url === '') continue;
        chain.push(`${f.functionName || '(anonymous)'} ${where(f.url)}:${f.lineNumber + 1}`);
      }
      const key = chain.join(' < ');
      callers.set(key, (callers.get(key) ?? 0) + us);
    }
  }
  process.stdout.write(`profile ${file}: ${(total / 1e6).toFixed(1)} s sampled\n`);
  print('self time by package / file', selfByWhere);
  print('self time by function', selfByFn);
  print('inclusive time of project functions', inclusiveOwn);
  if (callersOf) print(`callers of ${callersOf}`, callers);
}

/** Keeps only the samples of the window of `windowUs` with the fewest idle samples (sliding over the sample times). */
function keepBusiestWindow(profile: Profile, windowUs: number, isIdle: (id: number) => boolean): void {
  const at: number[] = [];
  let t = 0;
  for (const d of profile.timeDeltas) at.push((t += d));
  let busy = 0;
  let best = { busy: -1, from: 0, to: 0 };
  for (let from = 0, to = 0; to < at.length; to++) {
    if (!isIdle(profile.samples[to]!)) busy++;
    while (at[to]! - at[from]! > windowUs) if (!isIdle(profile.samples[from++]!)) busy--;
    if (busy > best.busy) best = { busy, from, to };
  }
  profile.samples = profile.samples.slice(best.from, best.to + 1);
  profile.timeDeltas = profile.timeDeltas.slice(best.from, best.to + 1);
}

main();
