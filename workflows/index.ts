/** Every workflow the control worker runs (the bundle's entry point). */
export { agentWorkflow } from './agent.js';
export { capacityWorkflow } from './capacity.js';
export { actionWorkflow } from './action.js';
export { reaperWorkflow } from './reaper.js';
