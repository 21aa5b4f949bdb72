// keygate console: the only script. Everything works without it; it adds copy buttons.
"use strict";
document.querySelectorAll("button.copy[data-copy]").forEach((button) => {
  const field = document.getElementById(button.dataset.copy);
  if (!field || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    navigator.clipboard.writeText(field.value).then(
      () => { button.textContent = "Copied"; },
      () => { field.select(); },
    );
  });
});
