/**
 * Warden's failure converter: failure messages and stack traces travel in an encoded attributes
 * payload, so the payload codec encrypts them like any other payload. Loaded by path (the SDK's
 * `failureConverterPath`) by clients, workers and the workflow bundle alike; plain CommonJS so every
 * process can `require()` it, whether or not it runs TypeScript.
 */
'use strict';
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
