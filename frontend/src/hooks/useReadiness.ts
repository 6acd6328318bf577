import { useEffect, useState } from "react";
import { api, type Readiness } from "../api/client";

export type ReadinessState = { kind: "checking" } | { kind: "unreachable" } | { kind: "known"; readiness: Readiness };

/** Polls /api/v1/ready: each engine's state, or that the server can't be reached. */
export function useReadiness(intervalMs = 5000): ReadinessState {
  const [state, setState] = useState<ReadinessState>({ kind: "checking" });
  useEffect(() => {
    let stopped = false;
    const check = async () => {
      try {
        // 503 carries the same Readiness body: it says which engine is loading or failed, and why.
        const { data, error } = await api.GET("/api/v1/ready");
        const body = (data ?? error) as Readiness | undefined;
        if (!stopped) {
          setState(body && "vlm" in body ? { kind: "known", readiness: body } : { kind: "unreachable" });
        }
      } catch {
        if (!stopped) setState({ kind: "unreachable" });
      }
    };
    void check();
    const timer = setInterval(() => void check(), intervalMs);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [intervalMs]);
  return state;
}
