import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { NetworkConfigureBody } from '@lq/api';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';

// The shapes here; the rules that need the whole interface (a gateway inside a prefix, DHCP
// without addresses, address syntax) are @lq/proto's validateNetworkInterfaces, which the agent
// runs too.

/** One interface of PUT /api/vms/:id/network. */
export class NetworkInterfaceDto {
  @ApiProperty({ example: 'eth0' })
  @IsString()
  @Matches(/^[A-Za-z0-9_.-]{1,15}$/, {
    message: 'interfaces.name must be 1-15 of A-Z a-z 0-9 _ . -',
  })
  name!: string;

  @ApiProperty({ enum: ['dhcp', 'static'] })
  @IsIn(['dhcp', 'static'], { message: 'interfaces.addressing must be dhcp or static' })
  addressing!: 'dhcp' | 'static';

  @ApiPropertyOptional({ type: [String], example: ['10.0.2.50/24'] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(16)
  @IsString({ each: true })
  @MaxLength(64, { each: true })
  addresses?: string[];

  @ApiPropertyOptional({ example: '10.0.2.2', nullable: true, type: String })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  gateway?: string | null;

  @ApiPropertyOptional({ type: [String], example: ['10.0.2.3'] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(8)
  @IsString({ each: true })
  @MaxLength(64, { each: true })
  dns_servers?: string[];

  @ApiPropertyOptional({ type: [String], example: ['example.com'] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(8)
  @IsString({ each: true })
  @MaxLength(253, { each: true })
  search_domains?: string[];

  @ApiPropertyOptional({ example: 1500, nullable: true, type: Number })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(9000)
  mtu?: number | null;
}

/** PUT /api/vms/:id/network */
export class NetworkConfigureDto implements NetworkConfigureBody {
  @ApiProperty({ type: [NetworkInterfaceDto] })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(16)
  @ValidateNested({ each: true })
  @Type(() => NetworkInterfaceDto)
  interfaces!: NetworkInterfaceDto[];

  @ApiPropertyOptional({
    example: 60,
    description: 'the agent rolls the change back unless confirmed within this (default 60)',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(3600)
  confirm_timeout_seconds?: number;

  @ApiPropertyOptional({ description: 'only render the native files (a preview)' })
  @IsOptional()
  @IsBoolean()
  dry_run?: boolean;

  @ApiPropertyOptional({
    description: 'leave the confirmation to POST /api/vms/:id/network/confirm',
  })
  @IsOptional()
  @IsBoolean()
  manual_confirm?: boolean;
}

/** POST /api/vms/:id/network/confirm */
export class NetworkConfirmDto {
  @ApiProperty({ example: '0f8c3f5e-6a55-4f0e-9d2b-3f4a5b6c7d8e' })
  @IsString()
  @Matches(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
    message: 'apply_id must be the apply_id a network PUT answered',
  })
  apply_id!: string;
}
