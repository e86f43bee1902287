// Roles and what each may do. Reads are open to every role; writes are scoped by resource.
export const ROLES = ['admin', 'ml-engineer', 'operator', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

/** The kinds of write a route performs. */
export type Permission = 'read' | 'models:write' | 'devices:write' | 'admin';

const GRANTS: Record<Role, ReadonlySet<Permission>> = {
  admin: new Set(['read', 'models:write', 'devices:write', 'admin']),
  'ml-engineer': new Set(['read', 'models:write']),
  operator: new Set(['read', 'devices:write']),
  viewer: new Set(['read']),
};

export function allows(role: Role, permission: Permission): boolean {
  return GRANTS[role].has(permission);
}
