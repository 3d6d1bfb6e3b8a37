/**
 * How risky an action is: the levels, lowest first, that skills declare for their operations and
 * the policy decides with. Pure, so workflow code may import it.
 */
import { z } from 'zod';

/** Risk levels, lowest first: low runs at once, medium is flagged, high needs one approval, critical two. */
export const RISK_LEVELS = ['low', 'medium', 'high', 'critical'] as const;
export const RiskLevelSchema = z.enum(RISK_LEVELS);
export type RiskLevel = z.infer<typeof RiskLevelSchema>;

/** The position of a level in RISK_LEVELS: compare two levels with it. */
export const riskRank = (level: RiskLevel): number => RISK_LEVELS.indexOf(level);

/** The higher of two levels. */
export const maxRisk = (a: RiskLevel, b: RiskLevel): RiskLevel => (riskRank(a) >= riskRank(b) ? a : b);
