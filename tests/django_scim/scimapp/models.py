"""The models django-scim2 documents for a project: its user and group mixins on Django's own."""
from django.contrib.auth.models import AbstractUser, Group
from django_scim.models import AbstractSCIMGroupMixin, AbstractSCIMUserMixin, SCIMServiceProviderConfig


class ScimGroup(AbstractSCIMGroupMixin, Group):
    pass


class User(AbstractSCIMUserMixin, AbstractUser):
    @property
    def scim_groups(self):
        return ScimGroup.objects.filter(user=self)


def anyone(user):
    """A loopback test server: every request is let in (the client's token is not checked)."""
    return True


class WithoutPatch(SCIMServiceProviderConfig):
    """The package's ServiceProviderConfig, announcing no PATCH (RFC 7644 makes it optional)."""

    def to_dict(self):
        d = super().to_dict()
        d["patch"] = {"supported": False}
        return d
