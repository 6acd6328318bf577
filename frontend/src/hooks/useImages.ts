import { useCallback, useEffect, useRef, useState } from "react";
import { api, errorOf, toFormData, type ErrorBody, type ImageInfo } from "../api/client";

export interface TrayImage {
  /** Local key (the server id is known only once the upload is done). */
  key: string;
  name: string;
  previewUrl: string;
  info: ImageInfo | null;
  error: ErrorBody | null;
  selected: boolean;
}

let nextKey = 0;

/** Images the user added: uploaded through the typed client, refused ones kept with the server's message. */
export function useImages() {
  const [images, setImages] = useState<TrayImage[]>([]);
  const urls = useRef(new Set<string>());

  const update = useCallback((key: string, change: Partial<TrayImage>) => {
    setImages((all) => all.map((image) => (image.key === key ? { ...image, ...change } : image)));
  }, []);

  const add = useCallback(
    async (files: File[]) => {
      const added = files.map((file) => {
        const previewUrl = URL.createObjectURL(file);
        urls.current.add(previewUrl);
        return { key: `image-${nextKey++}`, name: file.name || "pasted image", previewUrl, file };
      });
      setImages((all) => [
        ...all,
        ...added.map(({ key, name, previewUrl }) => ({
          key,
          name,
          previewUrl,
          info: null,
          error: null,
          selected: true,
        })),
      ]);
      await Promise.all(
        added.map(async ({ key, file }) => {
          try {
            const { data, error } = await api.POST("/api/v1/images", { body: { file }, bodySerializer: toFormData });
            if (data) update(key, { info: data });
            else update(key, { error: errorOf(error, "upload failed"), selected: false });
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
      if (gone) {
        URL.revokeObjectURL(gone.previewUrl);
        urls.current.delete(gone.previewUrl);
      }
      return all.filter((image) => image.key !== key);
    });
  }, []);

  const toggle = useCallback((key: string) => {
    setImages((all) => all.map((image) => (image.key === key ? { ...image, selected: !image.selected } : image)));
  }, []);

  useEffect(() => {
    const owned = urls.current;
    return () => owned.forEach((url) => URL.revokeObjectURL(url));
  }, []);

  const selected = images.filter((image) => image.selected && image.info !== null);
  return { images, selected, add, remove, toggle };
}
