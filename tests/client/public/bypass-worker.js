// A page's Web Worker: Kirjava's MAIN-world hook never runs here. The bypass tests make it
// send requests to the homeserver: { url, method, headers, body } -> { status, text }.
self.onmessage = async (event) => {
  const { url, method, headers, body } = event.data;
  try {
    const response = await fetch(url, { method, headers, body });
    self.postMessage({ status: response.status, text: await response.text() });
  } catch (error) {
    self.postMessage({ status: 0, text: String(error) });
  }
};
