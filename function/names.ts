/**
 * Every externally visible name of irsa-webhook: annotation keys, injected env vars, the token volume, HTTP routes.
 * One place, so docs, manifests and tests can check against the same strings.
 * @module
 */

/** Annotation prefix shared by every annotation the webhook reads. */
export const ANNOTATION_PREFIX = 'api.vultr.com'

/** ServiceAccount and pod annotations read by the webhook. */
export const ANNOTATIONS = {
  /** ServiceAccount: the Vultr role (UUID or `arn:` value). Presence opts the ServiceAccount in. */
  role: `${ANNOTATION_PREFIX}/role`,
  /** ServiceAccount: token audience, overriding `TOKEN_AUDIENCE`. */
  audience: `${ANNOTATION_PREFIX}/audience`,
  /** ServiceAccount: token lifetime in seconds, overriding `TOKEN_EXPIRATION_SECONDS` (min 600). */
  tokenExpiration: `${ANNOTATION_PREFIX}/token-expiration`,
  /** ServiceAccount: STS endpoint URL, overriding `STS_ENDPOINT`. */
  stsEndpoint: `${ANNOTATION_PREFIX}/sts-endpoint`,
  /** ServiceAccount: region injected as AWS_REGION/AWS_DEFAULT_REGION, overriding `DEFAULT_REGION`. */
  region: `${ANNOTATION_PREFIX}/region`,
  /** Pod: comma-separated container names that must not be touched. */
  skipContainers: `${ANNOTATION_PREFIX}/skip-containers`,
  /** Pod: set by the kubelet on mirror (static) pods, which the webhook never mutates. */
  mirror: 'kubernetes.io/config.mirror',
} as const

/** Pod labels read by the webhook. */
export const LABELS = {
  /**
   * Pod: `"true"` asks for credentials. The opt-in profile (deploy/components/opt-in-label) sends only pods with
   * this label to the webhook, with failurePolicy Fail; a labelled pod whose ServiceAccount has no role, or does
   * not exist, is admitted with a warning saying it gets no credentials.
   */
  optIn: `${ANNOTATION_PREFIX}/irsa`,
} as const

/** Environment variables injected into containers. */
export const ENV = {
  roleArn: 'AWS_ROLE_ARN',
  tokenFile: 'AWS_WEB_IDENTITY_TOKEN_FILE',
  regionalEndpoints: 'AWS_STS_REGIONAL_ENDPOINTS',
  stsEndpoint: 'AWS_ENDPOINT_URL_STS',
  region: 'AWS_REGION',
  defaultRegion: 'AWS_DEFAULT_REGION',
  /** Not injected; its presence in a container earns a warning (static keys beat web identity in every SDK). */
  accessKeyId: 'AWS_ACCESS_KEY_ID',
} as const

const TOKEN_MOUNT_PATH = '/var/run/secrets/vultr.com/serviceaccount'
const TOKEN_FILE_NAME = 'token'

/** The projected token volume and where it is mounted. */
export const TOKEN_VOLUME = {
  name: 'vultr-irsa-token',
  mountPath: TOKEN_MOUNT_PATH,
  fileName: TOKEN_FILE_NAME,
  tokenFile: `${TOKEN_MOUNT_PATH}/${TOKEN_FILE_NAME}`,
} as const

/** Defaults used when neither config nor a ServiceAccount annotation says otherwise. */
export const DEFAULTS = {
  audience: 'vultr',
  expirationSeconds: 86_400,
  stsEndpoint: 'https://api.vultr.com/v2/assumed-roles/compatibility/aws/sts',
  regionalEndpoints: 'regional',
} as const

/** Kubernetes rejects projected tokens shorter than 10 minutes. */
export const MIN_EXPIRATION_SECONDS = 600
/** Kubernetes rejects projected tokens longer than 2^32 seconds. */
export const MAX_EXPIRATION_SECONDS = 4_294_967_296

/** HTTP routes served by the app. `mutate` may carry a path secret: `/mutate/<MUTATE_PATH_TOKEN>`. */
export const ROUTES = {
  mutate: '/mutate',
  health: '/health',
  healthz: '/healthz',
  readyz: '/readyz',
  metrics: '/metrics',
} as const
