// Cold-start baseline: a worker that answers at once.
export default {
  async fetch() {
    return new Response("0");
  },
};
