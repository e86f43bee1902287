// The agent's version, compared with a bundle's minAgentVersion and reported on `reported`/`status`.
// A constant rather than a read of package.json: the agent ships alone and must not depend on where
// the package root sits at run time.
export const AGENT_VERSION = '0.1.0';
