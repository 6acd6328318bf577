import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

/** The typed HTTP client, generated from the backend's OpenAPI spec (frontend/openapi.json). */
// Same origin as the page (the backend serves the app, or Vite proxies /api in development).
export const api = createClient<paths>({ baseUrl: globalThis.location?.origin ?? "" });

// The API key, when the server wants one: kept for this browser tab's session only.
const KEY_ITEM = "imagesense.apiKey";
const keyListeners = new Set<() => void>();

export const apiKey = {
  get: (): string | null => globalThis.sessionStorage?.getItem(KEY_ITEM) ?? null,
  set(key: string | null): void {
    if (key) sessionStorage.setItem(KEY_ITEM, key);
    else sessionStorage.removeItem(KEY_ITEM);
  },
  /** Called whenever the server answers 401: the key is missing or wrong. */
  onRefused(listener: () => void): () => void {
    keyListeners.add(listener);
    return () => keyListeners.delete(listener);
  },
};

api.use({
  onRequest({ request }) {
    const key = apiKey.get();
    if (key) request.headers.set("Authorization", `Bearer ${key}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) keyListeners.forEach((listener) => listener());
    return response;
  },
});

/** Names the image a request is about, so a load balancer in front of replicas can route on it
 * (frontend/nginx.conf); the service itself ignores it. */
export const ROUTE_HEADER = "X-ImageSense-Image";

/** The stream's subprotocols: the key rides in one (browsers can't set headers on a WebSocket, and a
 * URL would land in logs); "imagesense" is the one the server selects. */
export function streamProtocols(): string[] {
  const key = apiKey.get();
  return key ? ["imagesense", `bearer.${key}`] : ["imagesense"];
}

type Schemas = components["schemas"];
export type ImageInfo = Schemas["ImageInfo"];
export type Readiness = Schemas["Readiness"];
export type ModelState = Schemas["ModelState"];
export type TaskResult = Schemas["TaskResult"];
export type OcrResult = Schemas["OcrResult"];
export type OcrLine = Schemas["OcrLine"];
export type StreamRequest = Schemas["StreamRequest"];
export type TaskOptions = Schemas["TaskOptions"];
export type Turn = Schemas["Turn"];
export type ServerEvent = Schemas["ServerEvent"];
export type ErrorBody = Schemas["ErrorBody"];
export type TaskName = StreamRequest["task"];
export type DocumentInfo = Schemas["DocumentInfo"];
export type ExtractResult = Schemas["ExtractResult"];
export type Preset = NonNullable<ExtractResult["preset"]>;
export type PageOcr = Schemas["PageOcr"];
/** The tabs of the app: the stream's tasks, and extraction (over HTTP). */
export type UiTask = TaskName | "extract";

/** A PDF page as an object URL (fetched with the client, so an API key goes along). */
export async function pageImageUrl(documentId: string, page: number): Promise<string | null> {
  const { data } = await api.GET("/api/v1/documents/{document_id}/pages/{page}.png", {
    params: { path: { document_id: documentId, page } },
    parseAs: "blob",
  });
  return data ? URL.createObjectURL(data as Blob) : null;
}

export function isOcrResult(result: TaskResult | OcrResult): result is OcrResult {
  return "lines" in result;
}

type FormField = string | number | boolean | Blob | null | undefined;

/** A typed multipart body as FormData: arrays become repeated fields, unset fields are left out. */
export function toFormData<T extends { [K in keyof T]: FormField | FormField[] }>(body: T): FormData {
  const form = new FormData();
  for (const name in body) {
    const value: FormField | FormField[] = body[name];
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item === null || item === undefined) continue;
      form.append(name, item instanceof Blob ? item : String(item));
    }
  }
  return form;
}

/** The `{"error": {...}}` body every endpoint answers with, or a stand-in when there is none. */
export function errorOf(body: unknown, fallback: string): ErrorBody {
  const error = (body as { error?: ErrorBody } | undefined)?.error;
  return error ?? { code: "network_error", message: fallback, field: null, request_id: null };
}
