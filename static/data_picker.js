// The data set picker (templates/partials/_data_picker.html): choosing a set reloads the page on
// it, keeping every other piece of state the URL holds now (a slider moved since the page
// opened included); the empty choice goes back to the model's own images.
for (const select of document.querySelectorAll("form.data-picker select[name=data]")) {
  select.addEventListener("change", () => {
    const url = new URL(location.href);
    if (select.value) url.searchParams.set("data", select.value);
    else url.searchParams.delete("data");
    location.assign(url);
  });
}
