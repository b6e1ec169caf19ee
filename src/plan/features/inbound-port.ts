// ISTIO_INBOUND_CAPTURE_PORT: inbound connections go to a port of their own, as Istio's 15006 beside 15001, so the
// proxy knows a connection's direction by the port it arrived on.

import type { Feature } from './types.js'

export const inboundPort: Feature = settings => (settings.inboundCapturePort === undefined ? {} : { inboundPort: settings.inboundCapturePort })
