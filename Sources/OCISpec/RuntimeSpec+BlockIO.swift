#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension RuntimeSpec {
    /// `linux.resources.blockIO`.
    public struct BlockIO: OCIObject {
        /// `weight` (10...1000).
        public var weight: UInt16?
        /// `leafWeight`.
        public var leafWeight: UInt16?
        /// `weightDevice`.
        public var weightDevice: [WeightDevice]?
        /// `throttleReadBpsDevice`.
        public var throttleReadBpsDevice: [ThrottleDevice]?
        /// `throttleWriteBpsDevice`.
        public var throttleWriteBpsDevice: [ThrottleDevice]?
        /// `throttleReadIOPSDevice`.
        public var throttleReadIOPSDevice: [ThrottleDevice]?
        /// `throttleWriteIOPSDevice`.
        public var throttleWriteIOPSDevice: [ThrottleDevice]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a block I/O setting.
        public init() {}

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            weight = try r.decode("weight")
            leafWeight = try r.decode("leafWeight")
            weightDevice = try r.decode("weightDevice")
            throttleReadBpsDevice = try r.decode("throttleReadBpsDevice")
            throttleWriteBpsDevice = try r.decode("throttleWriteBpsDevice")
            throttleReadIOPSDevice = try r.decode("throttleReadIOPSDevice")
            throttleWriteIOPSDevice = try r.decode("throttleWriteIOPSDevice")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(weight, "weight")
            try w.encode(leafWeight, "leafWeight")
            try w.encode(weightDevice, "weightDevice")
            try w.encode(throttleReadBpsDevice, "throttleReadBpsDevice")
            try w.encode(throttleWriteBpsDevice, "throttleWriteBpsDevice")
            try w.encode(throttleReadIOPSDevice, "throttleReadIOPSDevice")
            try w.encode(throttleWriteIOPSDevice, "throttleWriteIOPSDevice")
            try w.finish(extensions)
        }
    }

    /// An entry of `blockIO.weightDevice`.
    public struct WeightDevice: OCIObject {
        /// `major`.
        public var major: Int64
        /// `minor`.
        public var minor: Int64
        /// `weight`.
        public var weight: UInt16?
        /// `leafWeight`.
        public var leafWeight: UInt16?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a per-device weight.
        public init(major: Int64, minor: Int64, weight: UInt16? = nil) {
            self.major = major
            self.minor = minor
            self.weight = weight
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            major = try r.require("major")
            minor = try r.require("minor")
            weight = try r.decode("weight")
            leafWeight = try r.decode("leafWeight")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(major, "major")
            try w.encode(minor, "minor")
            try w.encode(weight, "weight")
            try w.encode(leafWeight, "leafWeight")
            try w.finish(extensions)
        }
    }

    /// An entry of the `blockIO.throttle*Device` lists.
    public struct ThrottleDevice: OCIObject {
        /// `major`.
        public var major: Int64
        /// `minor`.
        public var minor: Int64
        /// `rate` (bytes or operations per second).
        public var rate: UInt64
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a throttle.
        public init(major: Int64, minor: Int64, rate: UInt64) {
            self.major = major
            self.minor = minor
            self.rate = rate
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            major = try r.require("major")
            minor = try r.require("minor")
            rate = try r.require("rate")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(major, "major")
            try w.encode(minor, "minor")
            try w.encode(rate, "rate")
            try w.finish(extensions)
        }
    }
}
