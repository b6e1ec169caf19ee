// Every mode of the plan, by name: ours (settings to rules, with the capture features) and Istio's (its
// istio-iptables, on iptables or native nftables). A Record, so a mode cannot be added without its builder, and
// every command reaches a plan through here.

import type { IstioConfig } from '../../settings/istio/types.js'
import type { Family, Settings } from '../../settings/types.js'
import { buildPlan } from '../build.js'
import type { Plan, PlanFacts } from '../types.js'
import { buildIstioPlan, istioFamilies, istioFamiliesReason, type IstioFlavour } from './istio.js'

export interface ModeInputs {
  readonly sidecar: { readonly settings: Settings; readonly facts?: PlanFacts }
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
  readonly build: (input: ModeInputs[M], families: readonly Family[]) => Plan
}

export const MODES: { readonly [M in ModeName]: Mode<M> } = {
  sidecar: { families: () => undefined, build: ({ settings, facts }, families) => buildPlan(settings, families, facts) },
  istio: {
    families: ({ config, flavour }) => ({ value: istioFamilies(config, flavour), reason: istioFamiliesReason(config, flavour) }),
    build: ({ config, flavour }, families) => buildIstioPlan(config, flavour, families),
  },
}

/** A mode and its input together, as commands pass them. */
export type ModeRequest = { readonly [M in ModeName]: { readonly mode: M; readonly input: ModeInputs[M] } }[ModeName]

/** planFor builds the plan of a request for the families given. Pure. */
export const planFor = (request: ModeRequest, families: readonly Family[]): Plan =>
  (MODES[request.mode].build as (input: ModeInputs[ModeName], families: readonly Family[]) => Plan)(request.input, families)

/** familiesFor: the families the mode fixes, or undefined when the host decides. Pure. */
export const familiesFor = (request: ModeRequest): FamilyChoice | undefined =>
  (MODES[request.mode].families as (input: ModeInputs[ModeName]) => FamilyChoice | undefined)(request.input)
