import { useCallback, useState } from "react";
import type { Turn } from "../api/client";
import { isActive, type StreamState } from "./useStream";

export interface Conversation {
  turns: Turn[];
  /** The question being answered now, shown until its answer joins the turns. */
  pendingQuestion: string | null;
  /** Remember a question just sent; its answer joins the conversation when the stream is done. */
  asked: (question: string) => void;
  clear: () => void;
}

/**
 * The turns of a conversation about the selected images. A new selection starts a new conversation
 * (once nothing is running), and an answered question joins it with its answer; a failed or stopped
 * one does not. State is adjusted while rendering, from the stream's state, so no effect is needed.
 */
export function useConversation(stream: StreamState, selectionKey: string): Conversation {
  const [turns, setTurns] = useState<Turn[]>([]);
  const [pendingQuestion, setPendingQuestion] = useState<string | null>(null);
  const [aboutSelection, setAboutSelection] = useState(selectionKey);
  const busy = isActive(stream.status);

  if (aboutSelection !== selectionKey && !busy) {
    // The answer to a question about the old images belongs to the old conversation: both go.
    setAboutSelection(selectionKey);
    setTurns([]);
    setPendingQuestion(null);
  } else if (pendingQuestion !== null && !busy) {
    if (stream.status === "done") {
      setTurns([...turns, { role: "user", content: pendingQuestion }, { role: "assistant", content: stream.text }]);
    }
    setPendingQuestion(null);
  }

  const clear = useCallback(() => setTurns([]), []);
  return { turns, pendingQuestion, asked: setPendingQuestion, clear };
}
