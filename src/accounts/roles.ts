import type { Static } from '@sinclair/typebox';
import { StringEnum } from '../lib/schema.ts';

export const UserRole = StringEnum(['owner', 'admin', 'member', 'viewer'], {
  title: 'UserRole',
  description: 'owner > admin > member > viewer. viewer is read-only; admin and owner manage members.',
});
export type UserRole = Static<typeof UserRole>;

const rank: Record<UserRole, number> = { viewer: 0, member: 1, admin: 2, owner: 3 };

export function isRole(value: string): value is UserRole {
  return value in rank;
}

export function roleAtLeast(role: UserRole, minimum: UserRole): boolean {
  return rank[role] >= rank[minimum];
}

/** The weaker of two roles: what an API key can do is bounded by its creator's current role. */
export function weakerRole(a: UserRole, b: UserRole): UserRole {
  return rank[a] <= rank[b] ? a : b;
}
