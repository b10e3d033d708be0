declare const known: {
    connect: Set<string>;
    station: Set<string>;
    producer: Set<string>;
    consumer: Set<string>;
};
/** Throws InvalidArgumentError for a name `what` does not accept. */
export declare function checkOptions(what: keyof typeof known, options: object | null | undefined): void;
export {};
