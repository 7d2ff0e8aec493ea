// The import graph of a directory of TypeScript modules, read from the
// sources with the TypeScript parser: every static import and re-export,
// `import type` too (a cycle of types is still a cycle of modules), every
// dynamic import() and every import('...') type. Used by
// test/imports.test.ts to keep src/ free of cycles.
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';

/** Module file name (relative to the directory) → the modules of the same directory it imports, sorted. */
export type ImportGraph = Map<string, string[]>;

/** The relative specifiers a source text imports, in the order they appear. */
export function importSpecifiers(fileName: string, text: string): string[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier))
      out.push(node.moduleSpecifier.text);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression))
      out.push(node.moduleReference.expression.text);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      // a computed specifier cannot be checked: it is refused, not ignored
      if (!arg || !ts.isStringLiteralLike(arg)) throw new Error(`${fileName}: an import() whose module is not a string literal cannot be checked for cycles`);
      out.push(arg.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal))
      out.push(node.argument.literal.text);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The module of `dir` a relative specifier names (`./x.js` → `x.ts`), or undefined for a package or another directory. */
function resolveInDir(dir: string, from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const target = path.resolve(dir, path.dirname(from), spec);
  if (path.dirname(target) !== path.resolve(dir)) return undefined;
  const base = path.basename(target).replace(/\.(m?js|ts)$/, '');
  const name = `${base}.ts`;
  if (!fs.existsSync(path.join(dir, name))) throw new Error(`${from} imports ${spec}, which is not a module of ${dir}`);
  return name;
}

/** The import graph of every `*.ts` module directly in `dir` (declaration files excluded). */
export function importGraph(dir: string): ImportGraph {
  const graph: ImportGraph = new Map();
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .sort();
  for (const f of files) {
    const specs = importSpecifiers(f, fs.readFileSync(path.join(dir, f), 'utf8'));
    const targets = new Set<string>();
    for (const s of specs) {
      const t = resolveInDir(dir, f, s);
      if (t !== undefined) targets.add(t);
    }
    graph.set(f, [...targets].sort());
  }
  return graph;
}

/** The strongly connected components of the graph that hold a cycle (more than one module, or one importing itself). */
export function cyclicComponents(graph: ImportGraph): string[][] {
  // Tarjan's algorithm
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) strong(v);
  return out.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** A shortest cycle through `start` inside `members` (breadth first), as `[start, ..., start]`. */
export function cycleThrough(graph: ImportGraph, start: string, members: readonly string[]): string[] {
  const inside = new Set(members);
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const path = [v];
        for (let p = v; p !== start; ) path.unshift((p = prev.get(p)!));
        return [...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [];
}

/**
 * Every cycle of the graph, named: for each component with a cycle, its
 * modules and a shortest cycle through each of them (duplicates dropped),
 * e.g. `restart.ts → restart-tree.ts → restart.ts`.
 */
export function describeCycles(graph: ImportGraph): string[] {
  const lines: string[] = [];
  for (const comp of cyclicComponents(graph)) {
    const seen = new Set<string>();
    const cycles: string[] = [];
    for (const m of comp) {
      const c = cycleThrough(graph, m, comp);
      // the same cycle read from another of its modules
      const key = rotateToMin(c.slice(0, -1)).join(' ');
      if (seen.has(key)) continue;
      seen.add(key);
      cycles.push(`    ${c.join(' → ')}`);
    }
    lines.push(`  ${comp.length} module${comp.length === 1 ? '' : 's'} in one cycle: ${comp.join(', ')}\n${cycles.join('\n')}`);
  }
  return lines;
}

function rotateToMin(c: string[]): string[] {
  if (c.length === 0) return c;
  let k = 0;
  for (let i = 1; i < c.length; i++) if (c[i]! < c[k]!) k = i;
  return [...c.slice(k), ...c.slice(0, k)];
}

/** Every module reachable from `start` by imports (start included). */
export function reachableFrom(graph: ImportGraph, start: string): Set<string> {
  const seen = new Set<string>([start]);
  const queue = [start];
  while (queue.length > 0) for (const w of graph.get(queue.shift()!) ?? []) if (!seen.has(w)) seen.add(w), queue.push(w);
  return seen;
}

/** A path of imports from `from` to `to`, or undefined. */
export function importPath(graph: ImportGraph, from: string, to: string): string[] | undefined {
  const prev = new Map<string, string>();
  const queue = [from];
  const seen = new Set([from]);
  while (queue.length > 0) {
    const v = queue.shift()!;
    if (v === to) {
      const p = [v];
      for (let x = v; x !== from; ) p.unshift((x = prev.get(x)!));
      return p;
    }
    for (const w of graph.get(v) ?? [])
      if (!seen.has(w)) {
        seen.add(w);
        prev.set(w, v);
        queue.push(w);
      }
  }
  return undefined;
}
