// Light or dark: follows the system (prefers-color-scheme) until the user picks one in the
// header; the choice is remembered. The CSS reads <html data-theme>.

const THEME_ITEM = "sluice.console.theme";
export const THEMES = ["system", "light", "dark"];

export function theme() {
  try {
    const value = localStorage.getItem(THEME_ITEM);
    return THEMES.includes(value) ? value : "system";
  } catch {
    return "system";
  }
}

export function applyTheme(choice = theme()) {
  if (choice === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = choice;
}

export function setTheme(choice) {
  const value = THEMES.includes(choice) ? choice : "system";
  try {
    localStorage.setItem(THEME_ITEM, value);
  } catch {
    // Storage refused: the choice lasts for this page only.
  }
  applyTheme(value);
}

applyTheme();
