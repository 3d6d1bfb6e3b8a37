/** Every workflow the control worker runs (the bundle's entry point). */
export { agentWorkflow } from './agent.js';
export { capacityWorkflow } from './capacity.js';
export { actionWorkflow } from './action.js';
export { emergencyStopWorkflow } from './emergency-stop.js';
export { alertWorkflow } from './alert.js';
export { reaperWorkflow } from './reaper.js';
export { conversationWorkflow } from './conversation.js';
