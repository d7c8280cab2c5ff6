//! How each emulated app departs from RFC 7644, as its seed document describes it. The emulator
//! enforces these independently of the profiles, so the profiles are tested against them.
/// The app an emulator behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vendor {
    #[default]
    Generic,
    Whimsical,
    Quip,
    BlogIn,
    WorkRamp,
}

impl Vendor {
    pub fn parse(name: &str) -> Option<Vendor> {
        Some(match name {
            "generic" => Vendor::Generic,
            "whimsical" => Vendor::Whimsical,
            "quip" => Vendor::Quip,
            "blogin" => Vendor::BlogIn,
            "workramp" => Vendor::WorkRamp,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Vendor::Generic => "generic",
            Vendor::Whimsical => "whimsical",
            Vendor::Quip => "quip",
            Vendor::BlogIn => "blogin",
            Vendor::WorkRamp => "workramp",
        }
    }

    /// Quip (seed 001): "The PATCH operation is not supported for the /Groups resource."
    pub fn rejects_group_patch(self) -> bool {
        self == Vendor::Quip
    }
    /// WorkRamp (seed 004): "WorkRamp does not support the PUT operation for Groups."
    pub fn rejects_group_put(self) -> bool {
        self == Vendor::WorkRamp
    }
    /// Quip (001): "GET /Groups does not support sorting or filtering."
    pub fn rejects_group_filter(self) -> bool {
        self == Vendor::Quip
    }
    /// WorkRamp (004): "needs a startIndex (starting at 1) for it to be able to Get Users and Groups."
    pub fn requires_start_index(self) -> bool {
        self == Vendor::WorkRamp
    }
    /// Quip (001): "Deletion of the user will deactivate the user in Quip."
    pub fn delete_deactivates(self) -> bool {
        self == Vendor::Quip
    }
    /// Quip (001): "The userName field is set by Quip may not be modified."
    pub fn sets_user_name(self) -> bool {
        self == Vendor::Quip
    }
    /// Quip (001): "User emails must be unique within each company", disabled accounts included.
    pub fn unique_emails(self) -> bool {
        self == Vendor::Quip
    }
    /// Quip (001): "The type of every email is work"; "formatted is always … givenName … familyName";
    /// "Groups do not support the externalId attribute."
    pub fn quip_shapes(self) -> bool {
        self == Vendor::Quip
    }
    /// Whimsical (003): "Email addresses must be sent to Whimsical in lower case".
    pub fn rejects_upper_case_email(self) -> bool {
        self == Vendor::Whimsical
    }
    /// Whimsical (000): "After user creation, given name and family name fields can only be
    /// updated by the users themselves" — changes over SCIM are silently not kept.
    pub fn keeps_names_after_creation(self) -> bool {
        self == Vendor::Whimsical
    }
}
