/** Helpers for extracted data: the schema editor's check, the line items as CSV. */

export type SchemaCheck = { schema: Record<string, unknown>; error: null } | { schema: null; error: string };

/** A JSON Schema typed by hand: it must parse, and be an object. The server checks the rest. */
export function checkSchema(text: string): SchemaCheck {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { schema: null, error: (error as Error).message };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { schema: null, error: "a JSON Schema is a JSON object" };
  }
  return { schema: parsed as Record<string, unknown>, error: null };
}

type Row = Record<string, unknown>;

/** The first field holding a list of objects (an invoice's line items, a receipt's items), if any. */
export function lineItems(data: unknown): { field: string; rows: Row[]; columns: string[] } | null {
  if (typeof data !== "object" || data === null) return null;
  for (const [field, value] of Object.entries(data)) {
    if (Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === "object" && item !== null)) {
      const rows = value as Row[];
      return { field, rows, columns: columnsOf(rows) };
    }
  }
  return null;
}

function cell(value: unknown): string {
  const text = value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function columnsOf(rows: Row[]): string[] {
  return [...new Set(rows.flatMap((row) => Object.keys(row)))];
}

/** Rows as CSV (RFC 4180): a header of every key seen, in order of appearance. */
export function toCsv(rows: Row[]): string {
  const columns = columnsOf(rows);
  return [columns.map(cell).join(","), ...rows.map((row) => columns.map((name) => cell(row[name])).join(","))].join("\n");
}

/** The top-level fields that are not lists of objects: one row each in the result table. */
export function scalarFields(data: unknown): [string, string][] {
  if (typeof data !== "object" || data === null) return [];
  return Object.entries(data)
    .filter(([, value]) => !(Array.isArray(value) && value.some((item) => typeof item === "object")))
    .map(([name, value]) => [name, Array.isArray(value) ? value.join(", ") : value === null ? "—" : String(value)]);
}
