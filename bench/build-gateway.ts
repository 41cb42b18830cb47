/**
 * The gateway as production runs it (`npm start`: compiled JavaScript on plain node), built for the bench into its
 * own temp dir so the shared checkout's dist/ is left alone. tsx would add its loader's memory and start-up work to
 * every figure (an idle gateway under tsx already holds ~200 MB RSS).
 *
 * Layout: <dir>/dist/... from tsc, plus links to the checkout's package.json, proto/ (read at run time for gRPC
 * reflection) and node_modules/.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from './child-process';

const BUILD_TIMEOUT_MS = 180_000;

/** Compiles src/, migrations/ and the echo server into `dir`; returns their entry points and tsc's complaints (others' files may have some). */
export async function buildGateway(dir: string): Promise<{ main: string; echo: string; diagnostics: string }> {
  mkdirSync(dir, { recursive: true });
  for (const name of ['package.json', 'proto', 'node_modules']) symlinkSync(join(PROJECT_ROOT, name), join(dir, name));
  const tsconfig = join(dir, 'tsconfig.bench.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(PROJECT_ROOT, 'tsconfig.json'),
      compilerOptions: { outDir: join(dir, 'dist'), rootDir: PROJECT_ROOT, noEmit: false, sourceMap: false, declaration: false, incremental: false },
      include: [join(PROJECT_ROOT, 'src/**/*.ts'), join(PROJECT_ROOT, 'migrations/**/*.ts'), join(PROJECT_ROOT, 'bench/echo-*.ts')],
    }),
  );
  const tsc = join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const diagnostics = await new Promise<string>((resolve) => {
    execFile(process.execPath, [tsc, '-p', tsconfig], { cwd: PROJECT_ROOT, timeout: BUILD_TIMEOUT_MS, maxBuffer: 8 * 1024 * 1024 }, (_err, stdout, stderr) => {
      // tsc still emits when some file has a type error (noEmitOnError is off); a missing main.js is the real failure.
      resolve(`${stdout}${stderr}`.trim());
    });
  });
  const main = join(dir, 'dist', 'src', 'main.js');
  if (!existsSync(main)) throw new Error(`compiling the gateway produced no ${main}:\n${diagnostics.slice(-4000)}`);
  return { main, echo: join(dir, 'dist', 'bench', 'echo-server.js'), diagnostics };
}
