-- The Order model of schema.prisma as DDL; producer.ts runs it when the table is missing.
CREATE TABLE IF NOT EXISTS "orders" (
  "id" SERIAL PRIMARY KEY,
  "email" TEXT NOT NULL,
  "total_cents" INTEGER NOT NULL,
  "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
