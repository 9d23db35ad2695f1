export {
  RoomcastClient,
  Room,
  RoomPresence,
  RoomMetricsWatch,
  type RoomMetrics,
  type ClientOptions,
  type ClientEvents,
  type ConnectionState,
  type StateChange,
  type RoomRecovery,
  type EpochChange,
  type Message,
  type PresenceEvent,
  type PublishOptions,
  type PresencePage,
  type HistoryQuery,
  type HistoryPage,
  type EventMap,
  type WebSocketLike,
  type WebSocketConstructor,
} from "./client.js";
export { CLOSE_CODES, lookupClose, closePolicy, type CloseInfo, type RetryPolicy } from "./closecodes.js";
export { backoffDelay, type BackoffOptions } from "./backoff.js";
export { classify, type Verdict } from "./dedupe.js";
export { tokenExpiry, refreshDelay } from "./jwt.js";
export {
  encodeCommand,
  decodeFrame,
  FrameError,
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  ENCODING_BASE64,
  TOKEN_SUBPROTOCOL_PREFIX,
  type Json,
  type Position,
  type Limits,
  type Command,
  type Op,
  type ServerFrame,
  type ConnectedFrame,
  type ReplyFrame,
  type MessageFrame,
  type PresenceFrame,
  type MetricsFrame,
  type ErrorFrame,
  type PresenceMember,
  type PresenceCount,
  type PresenceAction,
  type HistoryMessage,
} from "./protocol.js";
export { jsonCodec, msgpackCodec, codecFor, loadCodec, toBase64, fromBase64, type Codec, type CodecName, type TextCodec, type BinaryCodec } from "./codec.js";
export { RoomcastError, ReplyError, CloseError, DisconnectedError, ClosedError, TimeoutError, TokenError } from "./errors.js";
export { UsersClient, UserSession, UsersError, SessionEndedError, USERS_ERROR_CODES, type UsersErrorCode, type UsersClientOptions, type UserSessionEvents, type User, type SessionTokens, type MFAChallenge, type SignInResult, type SessionInfo, type TOTPEnrollment, type TokenStorage } from "./users.js";
