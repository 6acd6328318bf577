import { describe, expect, test } from "vitest";
import { reduceEvent, IDLE } from "../hooks/useStream";
import { checkSchema, lineItems, scalarFields, toCsv } from "./extractData";

describe("the schema editor's check", () => {
  test("accepts a JSON object, names what is wrong otherwise", () => {
    expect(checkSchema('{"type": "object"}').schema).toEqual({ type: "object" });
    expect(checkSchema('{"type": ').error).toBeTruthy();
    expect(checkSchema("[1, 2]").error).toBe("a JSON Schema is a JSON object");
  });
});

describe("extracted data", () => {
  const invoice = {
    vendor: "Acme",
    total: 53.5,
    tax: null,
    line_items: [
      { description: "Hammer", quantity: 2, amount: 48 },
      { description: 'Nails, "long"', quantity: 100, amount: 5.5 },
    ],
  };

  test("the line items become CSV with quoted cells", () => {
    const items = lineItems(invoice);
    expect(items?.field).toBe("line_items");
    expect(toCsv(items!.rows)).toBe('description,quantity,amount\nHammer,2,48\n"Nails, ""long""",100,5.5');
  });

  test("the other fields are one row each", () => {
    expect(scalarFields(invoice)).toEqual([
      ["vendor", "Acme"],
      ["total", "53.5"],
      ["tax", "—"],
    ]);
  });
});

test("page events report a document's progress", () => {
  const state = reduceEvent(IDLE, { type: "page", page: 2, of: 5 }, 0);
  expect(state.page).toEqual({ done: 2, of: 5 });
});
