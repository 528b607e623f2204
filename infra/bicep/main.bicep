// The ML platform on Azure: `azd up` provisions this, then deploys the app package.
// Written by hand without a Bicep compiler at hand (offline): conventional resources and
// API versions only; run `az bicep build --file infra/bicep/main.bicep` before relying on it.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource (one that offers Flex Consumption).')
param location string

@description('Resource group to create (default rg-<environmentName>).')
param resourceGroupName string = ''

@description('Object id of who deploys (azd sets AZURE_PRINCIPAL_ID): may upload the package and create absent secrets. Empty = none.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

// --- scale (Flex Consumption) ------------------------------------------------------------
@description('Memory per instance (MB). Training of large partitions needs 4096.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Upper bound of instances (cost ceiling and storage-throughput guard).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Always-ready instances for the HTTP functions: 1 removes cold starts on login/predict (billed while idle); 0 scales to zero.')
@minValue(0)
param httpAlwaysReady int = 1

// --- platform behaviour ------------------------------------------------------------------
@description('NCRONTAB (6 fields) of the monthly training timer.')
param trainingSchedule string = '0 0 2 1 * *'

@description('Build identifier reported by /heartbeat; the deploy workflow passes the short git hash.')
param gitMetadata string = 'unknown'

@description('Users created on first start if absent, never overwritten; each password is the named Key Vault secret.')
param predefinedUsers array = [
  { username: 'admin', roles: ['admin'], password_secret: 'bootstrap-admin-password' }
  { username: 'adf-service', roles: ['train-service'], password_secret: 'adf-service-password' }
]

@description('Explicit secret values (secret name -> value), written on every deployment. Normally empty: the postprovision hook (scripts/ensure_secrets.py) generates the signing keys and passwords that are absent and never touches existing ones.')
@secure()
param secretValues object = {}

@description('Object id of an existing Data Factory\'s managed identity: may read the ADF service user\'s password secret and drop files into datasets/ and scoring/. Empty = none.')
param dataFactoryPrincipalId string = ''

param tags object = {}

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var allTags = union(tags, { 'azd-env-name': environmentName })
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

// Everything the code creates on first use, created here up front (tests/unit/test_infra.py
// checks this list against the code).
var blobContainers = [
  'models'
  'datasets'
  'scoring'
  'scored'
  'training-staging'
  'reports'
  'entities'
]
var tables = [
  'Users'
  'Roles'
  'ApiKeys'
  'RevokedTokens'
  'LoginAttempts'
  'Audit'
  'Idempotency'
  'Models'
  'Aliases'
  'Datasets'
  'TrainingSpecs'
  'Jobs'
  'JobUnits'
  'Predictions'
  'Traffic'
  'AbStats'
  'ScoringDatasets'
  'ScoringJobs'
  'ScoringTargets'
  'ScoringChunks'
  'RateLimits'
]
var queues = ['training', 'training-poison', 'scoring', 'scoring-poison']

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: allTags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: allTags
    deploymentContainerName: deploymentContainerName
    containers: blobContainers
    tables: tables
    queues: queues
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: allTags
    secrets: secretValues
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    keyVaultName: vault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module deployerRoles 'modules/deployer-roles.bicep' = if (!empty(principalId)) {
  name: 'deployer-roles'
  scope: rg
  params: {
    principalId: principalId
    principalType: principalType
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    keyVaultName: vault.outputs.name
  }
}

module dataFactoryRoles 'modules/datafactory-roles.bicep' = if (!empty(dataFactoryPrincipalId)) {
  name: 'datafactory-roles'
  scope: rg
  params: {
    principalId: dataFactoryPrincipalId
    storageAccountName: storage.outputs.name
    keyVaultName: vault.outputs.name
    passwordSecretName: 'adf-service-password'
  }
}

// Every setting the code reads (shared/settings.py) that differs from its default in Azure,
// plus the host's identity-based connection. tests/unit/test_infra.py parses this block.
var appSettings = {
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  AzureWebJobsDisableHomepage: 'true'
  APP_ENVIRONMENT: 'azure'
  GIT_METADATA: gitMetadata
  LOG_LEVEL: 'INFO'
  STORAGE_ACCOUNT_NAME: storage.outputs.name
  AZURE_CLIENT_ID: identity.outputs.clientId
  KEY_VAULT_URL: vault.outputs.uri
  JWT_SIGNING_KEY_SECRET_NAME: 'jwt-signing-key'
  JWT_PREVIOUS_SIGNING_KEY_SECRET_NAME: 'jwt-signing-key-previous'
  MODEL_SIGNING_KEY_SECRET_NAME: 'model-signing-key'
  MODEL_SIGNING_KEYS_PREVIOUS_SECRET_NAME: 'model-signing-keys-previous'
  REQUIRE_SIGNED_MODELS: 'true'
  JWT_ISSUER: 'ml-platform'
  JWT_AUDIENCE: 'ml-platform-api'
  ACCESS_TOKEN_TTL_SECONDS: '3600'
  ALLOW_SELF_REGISTRATION: 'false'
  PREDEFINED_USERS: string(predefinedUsers)
  TRAINING_SCHEDULE: trainingSchedule
  QUEUE_MAX_DEQUEUE_COUNT: '5'
  // Uploads stay below the host's request body limit (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT,
  // 100 MiB by default); larger data goes through Blob storage (README "Large data").
  MAX_MODEL_BYTES: '94371840'
  MAX_DATASET_BYTES: '94371840'
  // A third of a 2 GB instance for cached models; the rest for requests and training.
  MODEL_CACHE_BYTES: string(instanceMemoryMB * 1024 * 1024 / 3)
}

module app 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  dependsOn: [roles]
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: allTags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpAlwaysReady: httpAlwaysReady
    appSettings: appSettings
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output SERVICE_API_NAME string = app.outputs.name
output SERVICE_API_URI string = app.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_KEY_VAULT_URI string = vault.outputs.uri
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
// Read by the postprovision hook: which password secrets to create when absent.
output PREDEFINED_USER_SECRETS string = join(map(predefinedUsers, u => u.password_secret), ',')
