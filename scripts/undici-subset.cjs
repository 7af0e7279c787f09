'use strict'
/**
 * What the bundle (scripts/bundle.ts) takes of undici in place of its index.js: the parts the program imports from
 * 'undici' (src/util/request-url.ts, src/destination/dispatcher.ts, src/storage/s3/dispatcher.ts,
 * src/registry/exchange.ts), without fetch, WebSocket, the caches, the mocks and the interceptors, which the index
 * loads whole: about half of undici's code, and a run's start-up parses and runs all of it. The request API goes
 * onto the dispatchers' prototype as undici's index.js does it (`Object.assign(Dispatcher.prototype, api)`).
 * test/undici-subset.test.ts checks that every name the program imports from 'undici' is here.
 */
const Dispatcher = require('undici/lib/dispatcher/dispatcher.js')
const Agent = require('undici/lib/dispatcher/agent.js')
const api = require('undici/lib/api/index.js')
const util = require('undici/lib/core/util.js')
const { getGlobalDispatcher } = require('undici/lib/global.js')

Object.assign(Dispatcher.prototype, api)

module.exports = {
  Dispatcher,
  Agent,
  getGlobalDispatcher,
  util: { parseHeaders: util.parseHeaders, headerNameToString: util.headerNameToString }
}
