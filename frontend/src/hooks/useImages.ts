import { useCallback, useEffect, useRef, useState } from "react";
import { api, errorOf, pageImageUrl, toFormData, type DocumentInfo, type ErrorBody, type ImageInfo } from "../api/client";

export interface TrayImage {
  /** Local key (the server id is known only once the upload is done). */
  key: string;
  name: string;
  /** An image's own preview, or a PDF's first page once rendered. */
  previewUrl: string;
  info: ImageInfo | null;
  /** Set for a PDF: its pages, uploaded through /documents. */
  document: DocumentInfo | null;
  /** The PDF pages picked (empty: all of them). */
  pages: number[];
  error: ErrorBody | null;
  selected: boolean;
}

export function isPdf(file: File): boolean {
  return file.type === "application/pdf" || file.name.toLowerCase().endsWith(".pdf");
}

/** The server's id of a tray item, image or PDF, once it is uploaded. */
export function serverId(image: TrayImage): string | null {
  return image.info?.image_id ?? image.document?.document_id ?? null;
}

/** "1-3,5" for the pages picked: what the API's `pages` field takes. */
export function pageSelection(pages: number[]): string | undefined {
  return pages.length > 0 ? [...pages].sort((a, b) => a - b).join(",") : undefined;
}

let nextKey = 0;

async function upload(file: File): Promise<Partial<TrayImage>> {
  if (isPdf(file)) {
    const { data, error } = await api.POST("/api/v1/documents", { body: { file }, bodySerializer: toFormData });
    if (!data) return { error: errorOf(error, "upload failed"), selected: false };
    const previewUrl = (await pageImageUrl(data.document_id, 1)) ?? "";
    return { document: data, previewUrl };
  }
  const { data, error } = await api.POST("/api/v1/images", { body: { file }, bodySerializer: toFormData });
  return data ? { info: data } : { error: errorOf(error, "upload failed"), selected: false };
}

/** Images and PDFs the user added, uploaded through the typed client; refused ones keep the server's message. */
export function useImages() {
  const [images, setImages] = useState<TrayImage[]>([]);
  const urls = useRef(new Set<string>());

  const update = useCallback((key: string, change: Partial<TrayImage>) => {
    if (change.previewUrl) urls.current.add(change.previewUrl);
    setImages((all) => all.map((image) => (image.key === key ? { ...image, ...change } : image)));
  }, []);

  const add = useCallback(
    async (files: File[]) => {
      const added = files.map((file) => {
        const previewUrl = isPdf(file) ? "" : URL.createObjectURL(file);
        if (previewUrl) urls.current.add(previewUrl);
        return { key: `image-${nextKey++}`, name: file.name || "pasted image", previewUrl, file };
      });
      setImages((all) => [
        ...all,
        ...added.map(({ key, name, previewUrl }) => ({
          key,
          name,
          previewUrl,
          info: null,
          document: null,
          pages: [],
          error: null,
          selected: true,
        })),
      ]);
      await Promise.all(
        added.map(async ({ key, file }) => {
          try {
            update(key, await upload(file));
          } catch {
            update(key, { error: errorOf(undefined, "server unreachable"), selected: false });
          }
        }),
      );
    },
    [update],
  );

  const remove = useCallback((key: string) => {
    setImages((all) => {
      const gone = all.find((image) => image.key === key);
      if (gone?.previewUrl) {
        URL.revokeObjectURL(gone.previewUrl);
        urls.current.delete(gone.previewUrl);
      }
      return all.filter((image) => image.key !== key);
    });
  }, []);

  const toggle = useCallback((key: string) => {
    setImages((all) => all.map((image) => (image.key === key ? { ...image, selected: !image.selected } : image)));
  }, []);

  const setPages = useCallback((key: string, pages: number[]) => update(key, { pages }), [update]);

  useEffect(() => {
    const owned = urls.current;
    return () => owned.forEach((url) => URL.revokeObjectURL(url));
  }, []);

  const selected = images.filter((image) => image.selected && serverId(image) !== null);
  return { images, selected, add, remove, toggle, setPages };
}
