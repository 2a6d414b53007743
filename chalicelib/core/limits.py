"""The size limits of the services a row travels through, and the row size that fits them all.

A row goes from a chunk file to SQS (SendMessageBatch), through the sender to SNS (PublishBatch,
as the envelope: the request and Twilio's response), into the call ledger and the results table
(DynamoDB items). Each service refuses a request over its limit whole, so every batch is cut by
bytes as well as by count, and a row too large to travel is rejected at the splitter.
"""

from __future__ import annotations

from typing import Final

KIB: Final = 1024

# SQS: one message, and the whole SendMessageBatch request (body and attributes). SQS raised the
# message limit to 1 MiB in 2025, but SNS did not: the envelope's 256 KiB binds either way.
SQS_MAX_MESSAGE_BYTES: Final = 256 * KIB
SQS_MAX_BATCH_BYTES: Final = 256 * KIB
# SNS: one message, and the whole PublishBatch request (all entries together).
SNS_MAX_MESSAGE_BYTES: Final = 256 * KIB
SNS_MAX_BATCH_BYTES: Final = 256 * KIB
# SNS bills a published message by the 64 KB chunk (body and attributes): a message of 64 KB
# costs one request, one of 65 KB two. Responses are grouped into messages up to this size.
SNS_BILLED_CHUNK_BYTES: Final = 64 * KIB
# DynamoDB: one item (names and values), one TransactWriteItems, one BatchWriteItem.
DYNAMODB_MAX_ITEM_BYTES: Final = 400 * KIB
DYNAMODB_MAX_TRANSACTION_BYTES: Final = 4 * KIB * KIB
DYNAMODB_MAX_BATCH_WRITE_BYTES: Final = 16 * KIB * KIB

# The largest row (its parameters as compact JSON, UTF-8) the splitter accepts. An envelope holds
# the row's request and Twilio's response (a few KB; a Lookup with every package ~10 KB), and SNS
# message attributes: 64 KiB leaves room under the 256 KiB of SNS and SQS and the 400 KB of a
# DynamoDB item. Twilio itself takes a Body of 1,600 characters and 10 media URLs.
MAX_ROW_BYTES: Final = 64 * KIB
