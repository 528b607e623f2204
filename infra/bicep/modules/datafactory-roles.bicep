// Optional: what an existing Data Factory's managed identity needs, and nothing more.
// It reads one secret (the service user's password) and drops large files into the
// `datasets` and `scoring` containers with its Copy activity (README "Large data").
param principalId string
param storageAccountName string
param keyVaultName string
param passwordSecretName string

var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource dropContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [
  for name in ['datasets', 'scoring']: {
    parent: blobService
    name: name
  }
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource passwordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: passwordSecretName
}

resource dropWrite 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (name, i) in ['datasets', 'scoring']: {
    scope: dropContainers[i]
    name: guid(dropContainers[i].id, principalId, blobDataContributor)
    properties: {
      principalId: principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
    }
  }
]

// Scoped to the one secret, not the vault.
resource secretRead 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: passwordSecret
  name: guid(passwordSecret.id, principalId, keyVaultSecretsUser)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}
