import { useCallback, useEffect, useState } from "react";
import { api, apiKey } from "../api/client";

export type KeyState = "unknown" | "not-needed" | "needed" | "refused" | "accepted";

/**
 * Whether the server wants an API key, and the one this tab uses. On start it asks a route that needs
 * one (/api/v1/stats); any 401 later (a key revoked) asks again. A key is checked the same way before
 * it is kept.
 */
export function useApiKey() {
  const [state, setState] = useState<KeyState>("unknown");

  const probe = useCallback(async (): Promise<boolean> => {
    try {
      const { response } = await api.GET("/api/v1/stats");
      return response.status !== 401;
    } catch {
      return true; // unreachable: the readiness badge says so; nothing to ask the user here
    }
  }, []);

  useEffect(() => {
    let current = true;
    void probe().then((ok) => current && setState(ok ? (apiKey.get() ? "accepted" : "not-needed") : "needed"));
    const stop = apiKey.onRefused(() => setState(apiKey.get() ? "refused" : "needed"));
    return () => {
      current = false;
      stop();
    };
  }, [probe]);

  const submit = useCallback(
    async (key: string) => {
      apiKey.set(key.trim());
      setState((await probe()) ? "accepted" : "refused");
    },
    [probe],
  );

  return { state, submit };
}
