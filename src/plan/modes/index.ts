// Every mode of the plan, by name: ours (settings to rules, with the capture features) and Istio's (its
// istio-iptables, on iptables or native nftables). A Record, so a mode cannot be added without its builder, and
// every command reaches a plan through here.

import type { IstioConfig } from '../../settings/istio/types.js'
import type { Family, Settings } from '../../settings/types.js'
import { buildPlan } from '../build.js'
import { routedInterfaces } from '../features/exclude-interfaces.js'
import type { Plan, PlanFacts } from '../types.js'
import { buildIstioPlan, istioFamilies, istioFamiliesReason, type IstioFlavour } from './istio.js'

export interface ModeInputs {
  readonly sidecar: { readonly settings: Settings }
  readonly istio: { readonly config: IstioConfig; readonly flavour: IstioFlavour }
}

export type ModeName = keyof ModeInputs

/** The families a mode plans, and why. */
export interface FamilyChoice {
  readonly value: Family[]
  readonly reason: string
}

export interface Mode<M extends ModeName> {
  /** The families the mode plans, or undefined when the host decides them (ours: where IPv6 is on). */
  readonly families: (input: ModeInputs[M]) => FamilyChoice | undefined
  /** The interfaces whose routes the plan needs read from the host first (PlanFacts); none for a mode that needs none. */
  readonly routed: (input: ModeInputs[M]) => readonly string[]
  readonly build: (input: ModeInputs[M], families: readonly Family[], facts: PlanFacts) => Plan
}

export const MODES: { readonly [M in ModeName]: Mode<M> } = {
  sidecar: {
    families: () => undefined,
    routed: ({ settings }) => routedInterfaces(settings),
    build: ({ settings }, families, facts) => buildPlan(settings, families, facts),
  },
  istio: {
    families: ({ config, flavour }) => ({ value: istioFamilies(config, flavour), reason: istioFamiliesReason(config, flavour) }),
    // Istio's mode matches its interfaces by name alone: no routes to read.
    routed: () => [],
    build: ({ config, flavour }, families) => buildIstioPlan(config, flavour, families),
  },
}

/** A mode and its input together, as commands pass them. */
export type ModeRequest = { readonly [M in ModeName]: { readonly mode: M; readonly input: ModeInputs[M] } }[ModeName]

/** planFor builds the plan of a request for the families given, with what was read of the host (routedFor). Pure. */
export const planFor = (request: ModeRequest, families: readonly Family[], facts: PlanFacts = {}): Plan =>
  (MODES[request.mode].build as (input: ModeInputs[ModeName], families: readonly Family[], facts: PlanFacts) => Plan)(request.input, families, facts)

/** routedFor: the interfaces whose routes the request's plan needs read first. Pure. */
export const routedFor = (request: ModeRequest): readonly string[] =>
  (MODES[request.mode].routed as (input: ModeInputs[ModeName]) => readonly string[])(request.input)

/** familiesFor: the families the mode fixes, or undefined when the host decides. Pure. */
export const familiesFor = (request: ModeRequest): FamilyChoice | undefined =>
  (MODES[request.mode].families as (input: ModeInputs[ModeName]) => FamilyChoice | undefined)(request.input)
