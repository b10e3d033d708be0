// ES module entry: the same objects as the CommonJS entry.
import jetstation from './index.js'

export const {
  connect, setLogger, Client, Producer, Consumer, Message, SendHandle, mapError, kinds,
  JetstationError, ConnectionError, TimeoutError, AuthError, NotFoundError, AlreadyExistsError,
  InvalidArgumentError, PayloadTooLargeError, ServerTooOldError, ClosedError, BufferFullError,
  SchemaValidationError, IncompatibleSchemaError, BrokerError,
} = jetstation
export default jetstation
