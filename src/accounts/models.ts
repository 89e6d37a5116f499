import { Type, type Static } from '@sinclair/typebox';
import { Id, Nullable, StringEnum } from '../lib/schema.ts';
import { UserRole } from './roles.ts';

/**
 * The account models, named as the platform spec names them. They are the core's types and the
 * `/api` surface's wire format at once (snake_case fields, ISO-8601 UTC times).
 */

const Time = Type.String({ format: 'date-time', description: 'ISO-8601 UTC' });
export const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254 });
export const Password = Type.String({ minLength: 8, maxLength: 1024, description: 'At least 8 characters.' });
export const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' });

export { UserRole };

export const UserTenantStatus = StringEnum(['active', 'invited', 'disabled'], { title: 'UserTenantStatus' });
export type UserTenantStatus = Static<typeof UserTenantStatus>;

export const UserProfile = Type.Object(
  {
    id: Id,
    email: Type.String(),
    display_name: Type.String(),
    created_at: Time,
    last_login_at: Nullable(Time),
  },
  { title: 'UserProfile' },
);
export type UserProfile = Static<typeof UserProfile>;

export const Tenant = Type.Object(
  {
    id: Id,
    name: Type.String(),
    project_key: Type.String({ description: 'Identifies the tenant in `/public/{projectKey}/…` URLs.' }),
    created_at: Time,
  },
  { title: 'Tenant' },
);
export type Tenant = Static<typeof Tenant>;

export const TenantMembership = Type.Object(
  {
    tenant_id: Id,
    user_id: Id,
    role: UserRole,
    status: UserTenantStatus,
    created_at: Time,
    updated_at: Time,
    tenant: Tenant,
  },
  { title: 'TenantMembership' },
);
export type TenantMembership = Static<typeof TenantMembership>;

export const AuthSession = Type.Object(
  {
    token: Type.String({ description: 'Bearer token for `Authorization: Bearer …`; also set as the `yunji_session` cookie.' }),
    expires_at: Nullable(Time, { description: 'Null for an API key.' }),
    user: UserProfile,
    current_tenant: Tenant,
    current_role: UserRole,
    memberships: Type.Array(TenantMembership),
  },
  { title: 'AuthSession' },
);
export type AuthSession = Static<typeof AuthSession>;

export const TenantMember = Type.Object({ user: UserProfile, membership: TenantMembership }, { title: 'TenantMember' });
export type TenantMember = Static<typeof TenantMember>;

export const UserInvitationResult = Type.Object(
  {
    user: UserProfile,
    membership: TenantMembership,
    invitation_token: Type.String({ description: 'Give it to the invitee; it works once, until it expires.' }),
    invitation_expires_at: Time,
    created_user: Type.Boolean({
      description:
        "True when the invitation added the email to this tenant's users (a new pending member); false when it replaced a pending invitation. It never tells whether an account exists for the email elsewhere.",
    }),
  },
  { title: 'UserInvitationResult' },
);
export type UserInvitationResult = Static<typeof UserInvitationResult>;

export const ApiKey = Type.Object(
  {
    id: Id,
    name: Type.String(),
    role: UserRole,
    key_prefix: Type.String({ description: 'The first characters of the key, to tell keys apart.' }),
    tenant_id: Id,
    user_id: Id,
    created_at: Time,
    last_used_at: Nullable(Time),
  },
  { title: 'ApiKey' },
);
export type ApiKey = Static<typeof ApiKey>;

export const CreatedApiKey = Type.Intersect([ApiKey, Type.Object({ key: Type.String({ description: 'Shown only in this response.' }) })], {
  title: 'CreatedApiKey',
});
export type CreatedApiKey = Static<typeof CreatedApiKey>;

// Requests.
const strict = { additionalProperties: false } as const;

export const LoginRequest = Type.Object(
  { email: Email, password: Type.String({ minLength: 1, maxLength: 1024 }) },
  { ...strict, title: 'LoginRequest' },
);
export type LoginRequest = Static<typeof LoginRequest>;

export const SelectTenantRequest = Type.Object({ tenant_id: Id }, { ...strict, title: 'SelectTenantRequest' });

export const CreateTenantRequest = Type.Object({ name: Name }, { ...strict, title: 'CreateTenantRequest' });

export const InviteUserRequest = Type.Object({ email: Email, role: UserRole }, { ...strict, title: 'InviteUserRequest' });
export type InviteUserRequest = Static<typeof InviteUserRequest>;

export const AcceptInvitationRequest = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 200 }),
    password: Type.Optional(Password),
    display_name: Type.Optional(Name),
  },
  { ...strict, title: 'AcceptInvitationRequest' },
);
export type AcceptInvitationRequest = Static<typeof AcceptInvitationRequest>;

export const UpdateMemberRequest = Type.Object(
  {
    role: Type.Optional(UserRole),
    status: Type.Optional(StringEnum(['active', 'disabled'])),
  },
  { ...strict, minProperties: 1, title: 'UpdateMemberRequest' },
);
export type UpdateMemberRequest = Static<typeof UpdateMemberRequest>;

export const CreateApiKeyRequest = Type.Object({ name: Name, role: UserRole }, { ...strict, title: 'CreateApiKeyRequest' });
export type CreateApiKeyRequest = Static<typeof CreateApiKeyRequest>;
