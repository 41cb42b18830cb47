/**
 * Just enough PromQL reading to list the metric names an expression uses: string literals, label matchers,
 * range/subquery brackets and grouping clauses are blanked, numbers and durations skipped, function names
 * (an identifier followed by "(") and keywords dropped. What is left are metric names.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan', 'atan2']);

export function metricNamesIn(expr: string): Set<string> {
  // Grafana template queries: label_values(metric, label) / label_values(label).
  const labelValues = /^\s*label_values\(\s*(?:([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{[^}]*\})?\s*,)?\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$/.exec(expr);
  if (labelValues) return new Set(labelValues[1] ? [labelValues[1]] : []);

  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  s = s.replace(/\{[^}]*\}/g, ' ');
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/\boffset\s+-?[0-9a-z]+/g, ' ');
  const names = new Set<string>();
  const token = /(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)|(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([A-Za-z_:][A-Za-z0-9_:]*)/g;
  for (let m = token.exec(s); m !== null; m = token.exec(s)) {
    const ident = m[3];
    if (ident === undefined) continue; // a Grafana variable or a number
    if (KEYWORDS.has(ident.toLowerCase())) continue;
    if (/^\s*\(/.test(s.slice(token.lastIndex))) continue; // a function
    names.add(ident);
  }
  return names;
}

/** Strips the series suffixes a histogram or summary adds to its name. */
export function baseMetricName(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, '');
}

export interface DashboardQuery {
  readonly where: string;
  readonly expr: string;
}

/** Every PromQL expression in a Grafana dashboard JSON: panel targets (rows' nested panels too) and templating. */
export function dashboardQueries(path: string): DashboardQuery[] {
  const dash = JSON.parse(readFileSync(path, 'utf8')) as {
    panels?: Array<{ title?: string; targets?: Array<{ expr?: string }>; panels?: unknown[] }>;
    templating?: { list?: Array<{ name: string; type: string; query?: string | { query?: string } }> };
  };
  const out: DashboardQuery[] = [];
  const walk = (panels: unknown[] | undefined) => {
    for (const p of (panels ?? []) as Array<{ title?: string; targets?: Array<{ expr?: string }>; panels?: unknown[] }>) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    if (q) out.push({ where: `variable $${v.name}`, expr: q });
  }
  return out;
}

export interface AlertRule {
  readonly group: string;
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

/** Every rule of a Prometheus rule file. */
export function alertRules(path: string): AlertRule[] {
  const doc = parse(readFileSync(path, 'utf8')) as { groups: Array<{ name: string; rules: Array<Omit<AlertRule, 'group'>> }> };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ ...r, expr: String(r.expr), group: g.name })));
}
