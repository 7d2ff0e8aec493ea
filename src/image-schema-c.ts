// preload/schema.h, the restore host's copy of the image schema
// (src/image-schema.ts) as C tables, which preload/schema.c checks every
// header, metadata and manifest against. Generated, checked in (the C build
// needs no node), and kept current by test/schema.test.ts.
//   npm run schema        writes preload/schema.h
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA_FILE, SHIM_ABI, recordKeys, recordNames, type TypeNode } from './image-schema.js';

export const C_HEADER = 'preload/schema.h';

const OPS = ['uint', 'int', 'bool', 'text', 'bytes', 'null', 'any', 'array', 'record', 'union'] as const;

/** The C text of preload/schema.h for the schema as it is now. */
export function renderSchemaHeader(): string {
  const names = recordNames();
  const types: string[] = [];
  const typeIndex = new Map<string, number>();
  const alts: number[] = [];
  // a type node becomes one row of ck_schema_types (shared by equal types)
  const add = (t: TypeNode): number => {
    let a = 0;
    let b = 0;
    if (t.op === 'array') a = add(t.item);
    else if (t.op === 'record') a = names.indexOf(t.name);
    else if (t.op === 'union') {
      const idx = t.alts.map(add);
      a = alts.length;
      b = idx.length;
      alts.push(...idx);
    }
    const row = `{CKS_${t.op.toUpperCase()}, ${a}, ${b}}`;
    let i = typeIndex.get(row);
    if (i === undefined) {
      i = types.length;
      types.push(row);
      typeIndex.set(row, i);
    }
    return i;
  };
  const tables: string[] = [];
  for (const name of names) {
    const keys = recordKeys(name);
    if (keys.length > 64) throw new Error(`${SCHEMA_FILE}: record ${name} has more than 64 keys (preload/schema.c keeps one bit per key)`);
    const rows = keys.map((k) => {
      const kinds = k.kinds ? `"${k.kinds.join(',')}"` : '0';
      const unless = k.unless ? `"${k.unless}"` : '0';
      return `\t{"${k.key}", ${add(k.type)}, ${k.required ? 1 : 0}, ${kinds}, ${unless}}, /* ${k.typeText}${k.optional ? '?' : ''}${k.since ? ` since=${k.since}` : ''} */`;
    });
    tables.push(`static const struct ck_schema_key ck_schema_keys_${name}[] = {\n${rows.join('\n')}\n};`);
  }
  const lines = [
    `/* The image schema as the restore host checks it (preload/schema.c).`,
    ` * GENERATED from ${SCHEMA_FILE} by \`npm run schema\`: do not edit; change`,
    ` * the schema and run it again (test/schema.test.ts fails while this file`,
    ` * is not current). */`,
    `#ifndef CK_SCHEMA_H`,
    `#define CK_SCHEMA_H`,
    ``,
    `/* the shim ABI the schema describes (schema.c asserts it is ckrun.h's) */`,
    `#define CK_SCHEMA_SHIM_ABI ${SHIM_ABI}`,
    ``,
    `enum { ${OPS.map((o) => `CKS_${o.toUpperCase()}`).join(', ')} };`,
    ``,
    `/* array: a = the items' type; record: a = the record; union: the a..a+b-1`,
    ` * of ck_schema_alts */`,
    `struct ck_schema_type {`,
    `\tunsigned char op;`,
    `\tunsigned short a, b;`,
    `};`,
    ``,
    `struct ck_schema_key {`,
    `\tconst char *name;`,
    `\tunsigned short type;`,
    `\tunsigned char required;`,
    `\tconst char *kinds; /* "a,b": only in maps whose kind is one of these; 0: any */`,
    `\tconst char *unless; /* not required in a map that has this key; 0: none */`,
    `};`,
    ``,
    `struct ck_schema_record {`,
    `\tconst char *name;`,
    `\tconst struct ck_schema_key *keys;`,
    `\tunsigned nkeys;`,
    `};`,
    ``,
    `enum ck_schema_record_id {`,
    ...names.map((n, i) => `\tCK_SCHEMA_${n.toUpperCase()} = ${i},`),
    `};`,
    ``,
    `#ifdef CK_SCHEMA_TABLES`,
    ...tables,
    ``,
    `static const struct ck_schema_type ck_schema_types[] = {`,
    ...types.map((t, i) => `\t${t}, /* ${i} */`),
    `};`,
    ``,
    `static const unsigned short ck_schema_alts[] = {${alts.join(', ')}};`,
    ``,
    `static const struct ck_schema_record ck_schema_records[] = {`,
    ...names.map((n) => `\t{"${n}", ck_schema_keys_${n}, sizeof ck_schema_keys_${n} / sizeof ck_schema_keys_${n}[0]},`),
    `};`,
    `#endif`,
    ``,
    `#endif`,
    ``,
  ];
  return lines.join('\n');
}

/** The repository's root, from dist/src/ or src/. */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${join('dist', 'src')}`) ? join(here, '..', '..') : join(here, '..');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = join(repoRoot(), C_HEADER);
  writeFileSync(out, renderSchemaHeader());
  console.log(`wrote ${out}`);
}
