// Type-checks every dashboard in ../json against the `Dashboard` type of @grafana/schema, the
// schema Grafana publishes: each JSON file becomes a TypeScript constant of that type, so an
// unknown property, a missing required one or a value of the wrong type fails `tsc`.
// Run: npm ci && node check.mjs (the end-to-end tests run it).
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const dashboards = join(here, '..', 'json');
const generated = join(here, 'generated');
rmSync(generated, { recursive: true, force: true });
mkdirSync(generated);
const files = readdirSync(dashboards).filter((f) => f.endsWith('.json'));
for (const file of files) {
  const name = file.replace(/\.json$/, '').replace(/[^A-Za-z0-9]/g, '_');
  const json = readFileSync(join(dashboards, file), 'utf8');
  writeFileSync(
    join(generated, `${name}.ts`),
    [
      `// Generated from dashboards/json/${file} by check.mjs.`,
      `import type { Dashboard } from '@grafana/schema';`,
      '// JSON spells an enum member by its value ("absolute" for ThresholdsMode.Absolute).',
      'type Loose<T> = T extends string ? T | `${T}` : T extends (infer U)[] ? Loose<U>[] : T extends object ? { [K in keyof T]: Loose<T[K]> } : T;',
      `export const ${name}: Loose<Dashboard> = ${json};`,
      '',
    ].join('\n'),
  );
}
const tsc = spawnSync(process.execPath, [join(here, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', here], {
  stdio: 'inherit',
});
if (tsc.status === 0) {
  console.log(`${files.length} dashboards match @grafana/schema's Dashboard type`);
}
process.exit(tsc.status ?? 1);
