// The signed-in token (sessionStorage: gone when the tab closes, never in a URL) and its role.
import { signal } from '@preact/signals';
import { allows, type Permission, type Role } from '../../server/auth/roles.ts';

export type { Role };
export interface Me {
  tokenId: string;
  name: string;
  role: Role;
}

const KEY = 'flotilla.token';
export const me = signal<Me | null>(null);
export const signInMessage = signal<string | null>(null);

export const session = {
  token: (): string | null => sessionStorage.getItem(KEY),
  set(token: string, who: Me) {
    sessionStorage.setItem(KEY, token);
    signInMessage.value = null;
    me.value = who;
  },
  signOut(message: string | null = null) {
    sessionStorage.removeItem(KEY);
    signInMessage.value = message;
    me.value = null;
  },
  expired(message: string) {
    if (me.value) session.signOut(message);
  },
};

/** Whether the signed-in role may do this (the same table the server checks; the server still decides). */
export function can(permission: Permission): boolean {
  return me.value ? allows(me.value.role, permission) : false;
}
