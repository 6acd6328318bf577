import { render } from "@testing-library/react";
import type { ReactElement, ReactNode } from "react";
import { I18nProvider } from "../i18n/I18nContext";

export function renderWithI18n(element: ReactElement, language: "en" | "zh" = "en") {
  localStorage.setItem("imagesense.language", language);
  return render(element, { wrapper: ({ children }: { children: ReactNode }) => <I18nProvider>{children}</I18nProvider> });
}
