// Preloaded into kinesis-local (node --require): kinesis-mock binds 0.0.0.0 with no option to
// change it, and pistats services must listen on 127.0.0.1 only.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args.length > 0 && typeof args[0] === "object" && args[0] !== null && !Array.isArray(args[0])) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (typeof args[0] === "number" || typeof args[0] === "string") {
    const port = args[0];
    const rest = args.slice(1).filter((a) => typeof a === "function" || typeof a === "number");
    const callback = rest.find((a) => typeof a === "function");
    const backlog = rest.find((a) => typeof a === "number");
    return backlog === undefined
      ? listen.call(this, port, "127.0.0.1", callback)
      : listen.call(this, port, "127.0.0.1", backlog, callback);
  }
  return listen.apply(this, args);
};
