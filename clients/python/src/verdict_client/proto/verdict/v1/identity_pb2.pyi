from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_VIEWER: _ClassVar[Role]
    ROLE_OPERATOR: _ClassVar[Role]
    ROLE_APPROVER: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
    ROLE_EXECUTOR: _ClassVar[Role]

class AuthMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTH_METHOD_UNSPECIFIED: _ClassVar[AuthMethod]
    AUTH_METHOD_ANONYMOUS: _ClassVar[AuthMethod]
    AUTH_METHOD_STATIC_TOKEN: _ClassVar[AuthMethod]
    AUTH_METHOD_JWT: _ClassVar[AuthMethod]
    AUTH_METHOD_MTLS: _ClassVar[AuthMethod]
    AUTH_METHOD_CHAT: _ClassVar[AuthMethod]
    AUTH_METHOD_SYSTEM: _ClassVar[AuthMethod]
ROLE_UNSPECIFIED: Role
ROLE_VIEWER: Role
ROLE_OPERATOR: Role
ROLE_APPROVER: Role
ROLE_ADMIN: Role
ROLE_EXECUTOR: Role
AUTH_METHOD_UNSPECIFIED: AuthMethod
AUTH_METHOD_ANONYMOUS: AuthMethod
AUTH_METHOD_STATIC_TOKEN: AuthMethod
AUTH_METHOD_JWT: AuthMethod
AUTH_METHOD_MTLS: AuthMethod
AUTH_METHOD_CHAT: AuthMethod
AUTH_METHOD_SYSTEM: AuthMethod

class Permission(_message.Message):
    __slots__ = ("method", "allowed", "needed_role")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    NEEDED_ROLE_FIELD_NUMBER: _ClassVar[int]
    method: str
    allowed: bool
    needed_role: Role
    def __init__(self, method: _Optional[str] = ..., allowed: _Optional[bool] = ..., needed_role: _Optional[_Union[Role, str]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("subject", "auth_method", "roles", "permissions")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    AUTH_METHOD_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    subject: str
    auth_method: AuthMethod
    roles: _containers.RepeatedScalarFieldContainer[Role]
    permissions: _containers.RepeatedCompositeFieldContainer[Permission]
    def __init__(self, subject: _Optional[str] = ..., auth_method: _Optional[_Union[AuthMethod, str]] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ..., permissions: _Optional[_Iterable[_Union[Permission, _Mapping]]] = ...) -> None: ...
