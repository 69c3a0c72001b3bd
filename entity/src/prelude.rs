//! One import for app code: the behaviours, the context, the repository and the entities.

pub use crate::entities::prelude::*;
pub use crate::repo::RepoExt;
pub use crate::{
    AuditableEntity, BaseModel, Behaviours, BusinessScoped, Ctx, EntityError, ReadFrom, Repo, Scoped,
    SoftDeletable, Versioned,
};
