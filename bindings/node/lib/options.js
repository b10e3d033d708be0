"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.checkOptions = checkOptions;
const errors_1 = require("./errors");
const connect = [
    'token', 'user', 'password', 'nkeySeed', 'credsFile', 'tlsRequired', 'tlsCa', 'tlsCert', 'tlsKey', 'namespace',
    'name', 'connectTimeoutMs', 'requestTimeoutMs', 'maxReconnectDelayMs',
];
const station = [
    'partitions', 'replicas', 'storage', 'maxAgeMs', 'maxBytes', 'maxMessages', 'dedupWindowMs', 'maxDeliveries',
    'compaction', 'deleteGraceMs', 'schema', 'schemaVersion',
];
const producer = [
    'maxBatchMessages', 'maxBatchBytes', 'lingerMs', 'maxInFlight', 'bufferBytes', 'whenFull', 'deliveryTimeoutMs',
    'producerId',
];
const consumer = [
    'concurrency', 'start', 'startSequence', 'startTimeMs', 'ackWaitMs', 'maxAckPending', 'redeliveryDelayMs',
    'maxRedeliveryDelayMs', 'fetchBatch', 'handoverTimeoutMs', 'exactlyOnce', 'exactlyOnceRetentionMs',
];
// Compile-time: every option of the native types is listed.
const complete = [true, true, true, true];
void complete;
const known = {
    connect: new Set(connect),
    station: new Set(station),
    producer: new Set(producer),
    consumer: new Set(consumer),
};
/** Throws InvalidArgumentError for a name `what` does not accept. */
function checkOptions(what, options) {
    if (options === null || options === undefined)
        return;
    for (const name of Object.keys(options)) {
        if (!known[what].has(name)) {
            throw new errors_1.InvalidArgumentError(`unknown ${what === 'station' ? 'station setting' : `${what} option`} ${JSON.stringify(name)}; ` +
                `the ${what} options are ${[...known[what]].join(', ')}`);
        }
    }
}
