//! The Collex domain model: one module per table.

pub mod audit_logs;
pub mod businesses;
pub mod permissions;
pub mod role_permissions;
pub mod roles;
pub mod user_activities;
pub mod user_preferences;
pub mod user_roles;
pub mod user_sessions;
pub mod users;

/// PascalCase aliases of the entities.
pub mod prelude {
    pub use super::audit_logs::Entity as AuditLogs;
    pub use super::businesses::Entity as Businesses;
    pub use super::permissions::Entity as Permissions;
    pub use super::role_permissions::Entity as RolePermissions;
    pub use super::roles::Entity as Roles;
    pub use super::user_activities::Entity as UserActivities;
    pub use super::user_preferences::Entity as UserPreferences;
    pub use super::user_roles::Entity as UserRoles;
    pub use super::user_sessions::Entity as UserSessions;
    pub use super::users::Entity as Users;
}
