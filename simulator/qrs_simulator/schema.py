"""Property types of the QRS entities the simulator serves, transcribed from the QRS Swagger definitions.

Types: "str", "guid", "date", "bool", "int", "float"; "@Name" is a nested entity; a trailing "[]" a collection.
The filter compiler and the table endpoint resolve (case-insensitive) property paths against these."""

from __future__ import annotations

# Every repository entity starts with these; most also carry privileges.
_ENTITY = {
    "id": "guid", "createdDate": "date", "modifiedDate": "date", "modifiedByUserName": "str", "schemaPath": "str",
}
_OBJECT = {**_ENTITY, "privileges": "str[]"}
# LicenseProfessionalAccessType and LicenseAnalyzerAccessType have the same properties.
_ALLOCATION = {
    **_OBJECT, "user": "@UserCondensed", "lastUsed": "date", "excess": "bool", "quarantined": "bool",
    "quarantineEnd": "date", "deletedUserId": "str", "deletedUserDirectory": "str",
}

ENTITIES: dict[str, dict[str, str]] = {
    "User": {
        **_OBJECT, "customProperties": "@CustomPropertyValue[]", "userId": "str", "userDirectory": "str",
        "userDirectoryConnectorName": "str", "name": "str", "roles": "str[]", "attributes": "@UserAttribute[]",
        "inactive": "bool", "removedExternally": "bool", "blacklisted": "bool", "deleteProhibited": "bool",
        "tags": "@TagCondensed[]", "favorites": "guid[]",
    },
    "Tag": {**_OBJECT, "name": "str"},
    "CustomPropertyDefinition": {
        **_OBJECT, "name": "str", "valueType": "str", "choiceValues": "str[]", "objectTypes": "str[]",
        "description": "str",
    },
    "LicenseProfessionalAccessType": _ALLOCATION,
    "LicenseAnalyzerAccessType": _ALLOCATION,
    "LicenseAnalyzerTimeAccessType": {
        **_OBJECT, "name": "str", "usedMinutes": "int", "remainingMinutes": "int", "assignedMinutes": "int",
        "assignedUnits": "int",
    },
    "LicenseAnalyzerTimeAccessUsage": {
        **_OBJECT, "useStartTime": "date", "latestActivity": "date", "hostName": "str",
        "serverNodeConfigurationId": "str", "user": "@UserCondensed", "useStopTime": "date",
        "sessions": "@LicenseAnalyzerTimeAccessUsageSession[]",
        "analyzerTimeAccessType": "@LicenseAnalyzerTimeAccessTypeCondensed",
    },
    "LicenseUserAccessType": {
        **_OBJECT, "user": "@UserCondensed", "lastUsed": "date", "quarantined": "bool", "quarantineEnd": "date",
        "deletedUserId": "str", "deletedUserDirectory": "str",
    },
    "LicenseLoginAccessType": {
        **_OBJECT, "name": "str", "usedAccessTypes": "int", "remainingAccessTypes": "int", "assignedAccessTypes": "int",
        "assignedTokens": "int",
    },
    "CustomPropertyValue": {**_ENTITY, "value": "str", "definition": "@CustomPropertyDefinitionCondensed"},
    "UserAttribute": {**_ENTITY, "attributeType": "str", "attributeValue": "str", "externalId": "str"},
    "TagCondensed": {"id": "guid", "privileges": "str[]", "name": "str"},
    "UserCondensed": {
        "id": "guid", "privileges": "str[]", "userId": "str", "userDirectory": "str",
        "userDirectoryConnectorName": "str", "name": "str",
    },
    "LicenseAnalyzerTimeAccessUsageSession": {
        **_ENTITY, "sessionID": "str", "latestActivity": "date", "serverNodeConfigurationId": "str",
    },
    "LicenseAnalyzerTimeAccessTypeCondensed": {"id": "guid", "privileges": "str[]", "name": "str"},
    "CustomPropertyDefinitionCondensed": {
        "id": "guid", "privileges": "str[]", "name": "str", "valueType": "str", "choiceValues": "str[]",
    },
}

# The list endpoints (no /full) answer these condensed shapes, in this key order.
CONDENSED: dict[str, tuple[str, ...]] = {
    "User": ("id", "privileges", "userId", "userDirectory", "userDirectoryConnectorName", "name"),
    "Tag": ("id", "privileges", "name"),
    "CustomPropertyDefinition": ("id", "privileges", "name", "valueType", "choiceValues"),
    "LicenseProfessionalAccessType": ("id", "privileges"),
    "LicenseAnalyzerAccessType": ("id", "privileges"),
    "LicenseAnalyzerTimeAccessType": ("id", "privileges", "name"),
    "LicenseAnalyzerTimeAccessUsage": ("id", "privileges"),
    "LicenseUserAccessType": ("id", "privileges"),
    "LicenseLoginAccessType": ("id", "privileges", "name"),
}
